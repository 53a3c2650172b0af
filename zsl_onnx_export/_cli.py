"""`zsl-export`: a thin argparse layer over :func:`export_bundle`."""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import zsl_onnx
from zsl_onnx import ZslOnnxError

from ._api import export_bundle
from ._job import ExportOptions

__all__ = ["build_parser", "main", "options_from_args"]

# Defaults come from ExportOptions, the one place they are spelled.
DEFAULTS: dict[str, Any] = {option.name: option.default for option in fields(ExportOptions)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zsl-export",
        description="Export a transformers NLI model, or a sentence-transformers embedding model, to a "
        "validated zsl-onnx bundle (fp32 + accuracy-guarded int8 [+ fp16] ONNX, tokenizer.json, manifest).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {zsl_onnx.__version__}")
    parser.add_argument(
        "model",
        help="Hugging Face Hub id (org/name) or a local model directory; a sentence-transformers model "
        "(modules.json), a .zip of one, or package:MODULE (an installed package shipping model.zip, e.g. "
        "package:all_minilm_l6_v2) gives an embedding bundle",
    )
    parser.add_argument("-o", "--output", required=True, help="directory to write the bundle to")
    parser.add_argument("--revision", help="Hub branch, tag or commit (default: main)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow the model repo's own Python code to run"
    )
    parser.add_argument(
        "--template", default=DEFAULTS["template"], help=f"default hypothesis template (default: {DEFAULTS['template']!r})"
    )
    parser.add_argument(
        "--quantize",
        choices=["dynamic", "none"],
        default="dynamic",
        help="dynamic: an int8 variant that quantizes each token row on its own (its scale computed at run "
        "time, or calibrated at export for the attention input), kept only if the accuracy guard passes it "
        "(default); none: fp32 only",
    )
    _add_guard_options(parser.add_argument_group("int8 accuracy guard"))
    parser.add_argument(
        "--fp16", action="store_true", help="also write onnx/model_fp16.onnx for CUDA (checked against fp32 on the CPU)"
    )
    parser.add_argument(
        "--fp16-min-agreement", type=_fraction, default=DEFAULTS["fp16_min_agreement"],
        help="top-1 agreement with fp32 on held-out calibration pairs that --fp16 needs, or the export fails "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--no-validate", dest="validate", action="store_false",
        help="write the bundle even if fp32 logits differ from PyTorch by more than --atol",
    )
    parser.add_argument("--atol", type=_tolerance, default=DEFAULTS["atol"], help="max |logit diff| allowed for fp32 (default: 1e-3)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--cache-dir", help="Hugging Face cache directory for downloads")
    parser.add_argument("--offline", action="store_true", help="never contact the Hugging Face Hub; use the local cache")
    parser.add_argument(
        "--hub-timeout", type=_seconds, default=DEFAULTS["hub_timeout"],
        help=f"seconds each Hugging Face Hub request may take (default: {DEFAULTS['hub_timeout']:g})",
    )
    return parser


def _add_guard_options(guard: argparse._ArgumentGroup) -> None:
    """The int8 accuracy guard's options."""
    guard.add_argument(
        "--min-agreement", type=_fraction, default=DEFAULTS["min_agreement"],
        help="agreement with fp32 an int8 candidate needs: top-1 on held-out calibration pairs (NLI), or the "
        "agreement expected from its margin shifts on the guard's decisions (embeddings) (default: %(default)s)",
    )
    guard.add_argument(
        "--calibration-file",
        help="JSONL of {\"premise\", \"hypothesis\"} pairs, or a text file of premises (one a line) "
        "used with --template and --calibration-labels (default: the built-in multilingual set)",
    )
    guard.add_argument("--calibration-labels", help="comma-separated labels for a text --calibration-file")
    guard.add_argument(
        "--keep-lossy-int8", action="store_true",
        help="when no candidate reaches --min-agreement, keep the most faithful one instead of shipping fp32 only",
    )
    guard.add_argument("--threads", type=int, help="ONNX Runtime threads for the speed measurements (default: all cores)")


def options_from_args(args: argparse.Namespace) -> ExportOptions:
    """The :class:`ExportOptions` that parsed ``zsl-export`` arguments ask for."""
    return ExportOptions(
        model=args.model,
        output=Path(args.output),
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        template=args.template,
        quantize_int8=args.quantize == "dynamic",
        min_agreement=args.min_agreement,
        calibration_file=args.calibration_file,
        calibration_labels=_labels(args.calibration_labels),
        keep_lossy_int8=args.keep_lossy_int8,
        fp16=args.fp16,
        fp16_min_agreement=args.fp16_min_agreement,
        threads=args.threads,
        validate=args.validate,
        atol=args.atol,
        overwrite=args.overwrite,
        cache_dir=args.cache_dir,
        local_files_only=args.offline,
        hub_timeout=args.hub_timeout,
    )


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, like 30, not {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], like 0.99, not {text}")
    return value


def _labels(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _tolerance(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, like 1e-3, not {text}")
    return value


def _missing_export_extra() -> list[str]:
    """The exporter's own dependencies that this install lacks (a runtime-only install lacks all)."""
    return [name for name in ("torch", "transformers", "optimum", "onnx") if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a broken or blocked install counts as missing
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = _missing_export_extra()
    if missing:
        print(f'zsl-export: error: exporting needs {", ".join(missing)}: pip install "zsl-onnx[export]"', file=sys.stderr)
        return 1
    try:
        export_bundle(options_from_args(args), progress=lambda message: print(message, file=sys.stderr, flush=True))
    except ZslOnnxError as exc:
        print(f"zsl-export: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
