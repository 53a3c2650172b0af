"""`python -m zsl_onnx`: print the version and the execution providers this install offers."""

from __future__ import annotations

import sys

import onnxruntime as ort

from ._version import __version__


def main() -> int:
    print(f"zsl-onnx {__version__}")
    print(f"onnxruntime {ort.__version__} ({ort.get_device()})")
    print("available providers: " + ", ".join(ort.get_available_providers()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
