"""The ``zsl-classify`` command: argparse, then one run, then one line per error.

Everything below the command line takes a :class:`~zsl_onnx.classify.options.ClassifyOptions`
built here once; the run itself is ``run.run``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from zsl_onnx import DEFAULT_TEMPLATE, ZslOnnxError, __version__
from zsl_onnx.internals import DEFAULT_BATCH_SIZE

from .chunks import LOCAL_CLUSTER
from .options import ClassifyOptions
from .progress import Progress, interrupted, os_error
from .records import FORMATS, OUTPUT_FORMATS
from .run import Fault, run

__all__ = ["build_parser", "main", "run_command"]


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: the exit status of one run of the command line ``argv``."""
    return run_command(argv)


def run_command(argv: Sequence[str] | None, fault: Fault | None = None) -> int:
    """``main`` with a ``fault`` callable passed to the run (see ``run.run``): 0, 1, or 130 on Ctrl-C."""
    options = ClassifyOptions.from_namespace(build_parser().parse_args(argv))
    progress = Progress()
    try:
        return run(options, progress, fault)
    except ZslOnnxError as exc:
        print(f"zsl-classify: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"zsl-classify: error: {os_error(exc, progress)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"\nzsl-classify: {interrupted(progress)}", file=sys.stderr)
        return 130
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zsl-classify",
        description="Classify every record of a JSONL, CSV, TSV or text file with a zero-shot model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("model", help="bundle directory made by zsl-export, or a Hub repo id")
    parser.add_argument("input", help="input file, or - for stdin (then --input-format is required)")
    parser.add_argument("-o", "--output", required=True, help="output file, or - for stdout")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help='comma-separated candidate labels, e.g. "politics,sports,economy"')
    labels.add_argument("--labels-file", help="file with one candidate label a line")
    labels.add_argument("--labels-field", metavar="FIELD",
                        help="each record's own candidate labels are in this field (a JSON list or a comma-separated string)")
    parser.add_argument("--input-format", choices=FORMATS, help="default: from the input's extension")
    parser.add_argument("--format", dest="output_format", choices=OUTPUT_FORMATS,
                        help="output format (default: from the output's extension, else jsonl)")
    parser.add_argument("--text-field", action="append", dest="text_fields",
                        help="field holding the text (default: text); repeat to join several, e.g. title and body")
    parser.add_argument("--field-prefix", default="", help="prefix for the fields the output adds (labels, scores, ...)")
    parser.add_argument("--template", default=None, help=f"hypothesis template (default: the bundle's, usually {DEFAULT_TEMPLATE!r})")
    parser.add_argument("--multi-label", action="store_true", help="score each label independently")
    parser.add_argument("--threshold", type=float, help="mark records whose top score is at least this")
    parser.add_argument("--only-above", action="store_true", help="with --threshold: write only the records that pass it")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"pairs per model call (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--flush-every", type=int, default=256, help="records per written and checkpointed chunk (default: 256)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    parser.add_argument("--variant", choices=("fp32", "int8", "fp16"), help="model file (default: int8 on CPU when present)")
    parser.add_argument("--max-length", type=int, help="lower the model's token limit for speed")
    _add_long_text_arguments(parser)
    parser.add_argument("--skip-invalid", action="store_true", help="send bad records to the rejects file and go on")
    parser.add_argument("--max-rejects", type=_reject_limit,
                        help="with --skip-invalid: stop when rejects exceed N records, or N%% of the records read so far")
    parser.add_argument("--rejects", help="rejects file (JSONL; default: OUTPUT.rejects.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run with the same arguments")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--offline", action="store_true", help="never contact the Hugging Face Hub; use the local cache")
    parser.add_argument("--report", help="also draw the label distribution and score histogram to this PNG (needs matplotlib)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    _add_ray_arguments(parser)
    return parser


def _add_long_text_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--long-text", choices=("truncate", "chunk"), default="truncate",
                        help="a text longer than the model's input: cut it (default, counted in the summary) or "
                             "read it whole as overlapping windows")
    parser.add_argument("--max-windows", type=int,
                        help="with --long-text chunk: read at most this many windows of a text (default: 16)")
    parser.add_argument("--truncation-field", metavar="FIELD",
                        help="add this field to each record: the tokens truncation left unread (0 when none)")
    parser.add_argument("--label-config", action="store_true",
                        help="print the Label Studio labelling config for these labels and exit")


def _add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale-out on Ray (pip install 'zsl-onnx[ray]')")
    group.add_argument("--ray", nargs="?", const=LOCAL_CLUSTER, metavar="ADDRESS",
                       help="classify on Ray actors: no value starts a local cluster for the run, 'auto' joins "
                            "this machine's cluster, or give its address (host:6379, ray://host:10001)")
    group.add_argument("--workers", type=int,
                       help="with --ray: actors, each with --threads threads (default: the cluster's CPUs / --threads)")


def _reject_limit(text: str) -> tuple[int | None, float | None]:
    """'50' (records) or '5%' (of the records read so far)."""
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
            if math.isfinite(share) and 0 <= share <= 1:
                return None, share
        elif int(text) >= 0:
            return int(text), None
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"must be a count like 50 or a percentage like 5%, not {text!r}")
