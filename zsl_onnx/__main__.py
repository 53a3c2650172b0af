"""`python -m zsl_onnx`: print the version and the execution providers this install offers.

The first thing to run after installing, or after swapping onnxruntime for onnxruntime-gpu:
it shows which ONNX Runtime build is in use and whether a GPU provider is available.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zsl_onnx",
        description="Print the zsl-onnx and ONNX Runtime versions and the execution providers available "
        "here. Classify files with zsl-classify; export models with zsl-export (the [export] extra).",
    )
    parser.add_argument("--version", action="version", version=f"zsl-onnx {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    import onnxruntime as ort

    print(f"zsl-onnx {__version__}")
    print(f"onnxruntime {ort.__version__} ({ort.get_device()})")
    print("available providers: " + ", ".join(ort.get_available_providers()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
