"""`zsl-export`: a thin argparse layer over :func:`export_bundle`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zsl_onnx import ZslOnnxError
from zsl_onnx._hypotheses import DEFAULT_TEMPLATE

from ._api import export_bundle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zsl-export",
        description="Export a transformers NLI model to a validated zsl-onnx bundle "
        "(fp32 + int8 ONNX, tokenizer.json, manifest).",
    )
    parser.add_argument("model", help="Hugging Face Hub id (org/name) or a local transformers model directory")
    parser.add_argument("-o", "--output", required=True, help="directory to write the bundle to")
    parser.add_argument("--revision", help="Hub branch, tag or commit (default: main)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow the model repo's own Python code to run"
    )
    parser.add_argument(
        "--template", default=DEFAULT_TEMPLATE, help=f"default hypothesis template (default: {DEFAULT_TEMPLATE!r})"
    )
    parser.add_argument(
        "--quantize", choices=["dynamic", "none"], default="dynamic", help="int8 variant (default: dynamic)"
    )
    parser.add_argument(
        "--no-validate", dest="validate", action="store_false",
        help="write the bundle even if fp32 logits differ from PyTorch by more than --atol",
    )
    parser.add_argument("--atol", type=float, default=1e-3, help="max |logit diff| allowed for fp32 (default: 1e-3)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--cache-dir", help="Hugging Face cache directory for downloads")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        export_bundle(
            args.model,
            args.output,
            revision=args.revision,
            trust_remote_code=args.trust_remote_code,
            template=args.template,
            quantize_int8=args.quantize == "dynamic",
            validate=args.validate,
            atol=args.atol,
            overwrite=args.overwrite,
            cache_dir=args.cache_dir,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
        )
    except ZslOnnxError as exc:
        print(f"zsl-export: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
