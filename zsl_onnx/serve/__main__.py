"""python -m zsl_onnx.serve: the zsl-serve command."""

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
