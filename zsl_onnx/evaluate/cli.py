"""The ``zsl-evaluate`` command: argparse over the named steps of the evaluation.

Bad input is one line, ``zsl-evaluate: error: ...``, and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from .errors import EvaluationError
from .evaluation import evaluate
from .gold import read_gold_export
from .predictions import Options
from .report import check_report_path, draw_report, render_text

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zsl-evaluate",
        description="Evaluate zero-shot labels against hand labels, and find the top-score threshold above "
                    "which they can be accepted without review.",
    )
    parser.add_argument("predictions", help="zsl-classify output (JSONL, CSV, TSV, Argilla) or Label Studio tasks (JSON)")
    gold = parser.add_mutually_exclusive_group(required=True)
    gold.add_argument("--gold-field", metavar="NAME", help="the records' field holding the hand label(s)")
    gold.add_argument("--gold", metavar="EXPORT", help="a Label Studio JSON export or an Argilla 2.x records export")
    parser.add_argument("--id-field", default="id", metavar="NAME", help="the field joining predictions and --gold (default: id)")
    parser.add_argument("--target-precision", type=float, default=0.95, metavar="P",
                        help="precision the recommended threshold must reach on its 95%% Wilson lower bound (default 0.95)")
    parser.add_argument("--multi-label", action="store_true", help="several labels per record; each label is judged on its own")
    parser.add_argument("--field-prefix", default="", metavar="P", help="the --field-prefix the predictions were written with")
    parser.add_argument("--question", default="label", metavar="NAME",
                        help="Label Studio's choices name / Argilla's question (default: label)")
    parser.add_argument("--json", action="store_true", help="print the evaluation as one JSON object")
    parser.add_argument("--report", metavar="PNG", help="also draw the precision-coverage curve and the confusion matrix")
    parser.add_argument("--version", action="version", version=f"zsl-evaluate {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except EvaluationError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: interrupted\n")
    except BrokenPipeError:  # `zsl-evaluate ... | head`: the reader left; no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def run(args: argparse.Namespace) -> None:
    """Check the request, read the gold labels, evaluate in one pass, then print and draw."""
    if not 0.0 < args.target_precision <= 1.0:
        raise EvaluationError(f"--target-precision must be in (0, 1], not {args.target_precision}")
    report = Path(args.report) if args.report else None
    if report is not None:
        check_report_path(report)
    options = Options(args.id_field, args.gold_field, args.field_prefix, args.question, args.multi_label)
    gold = read_gold_export(Path(args.gold), options) if args.gold else None
    summary = evaluate(Path(args.predictions), gold, options, args.target_precision)
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_text(summary))
    if report is not None:
        draw_report(summary, report)
