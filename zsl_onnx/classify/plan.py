"""Every check of a run that needs no model and writes nothing: formats, paths, limits, labels.

A mistake in the options is refused here, before a model is loaded or a file is touched, so
an hours-long run never fails at its end for something that could be told at its start.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from zsl_onnx import InvalidInputError
from zsl_onnx.internals import parse_labels, same_file

from .options import ClassifyOptions
from .records import FORMATS, format_from_name, output_format_from_name
from .report import require_matplotlib

__all__ = ["STATE_SUFFIX", "Plan", "make_plan"]

STATE_SUFFIX = ".zsl-state.json"


@dataclass(frozen=True)
class Plan:
    """The checked options of one run: formats, paths and limits. Building it touches no file."""

    input: str  # a path, or "-" for stdin
    output: Path | None  # None: stdout
    rejects: Path | None  # None: rejects are not written
    report: Path | None
    input_format: str
    output_format: str
    labels: list[str]
    text_fields: list[str]
    max_rejects: int | None
    max_reject_share: float | None

    @property
    def state(self) -> Path | None:
        return None if self.output is None else self.output.with_name(self.output.name + STATE_SUFFIX)


def make_plan(options: ClassifyOptions) -> Plan:
    """Every check that needs no model and writes nothing."""
    input_format = options.input_format or (None if options.input == "-" else format_from_name(options.input))
    if input_format is None:
        raise InvalidInputError(
            f"Cannot tell the format of {'stdin' if options.input == '-' else options.input}; "
            f"pass --input-format ({', '.join(FORMATS)})."
        )
    _check_numbers(options)
    _check_ray(options)
    _check_long_text_and_label_sets(options)
    if options.resume and (options.output == "-" or options.input == "-"):
        raise InvalidInputError("--resume needs an input file and an output file, not stdin/stdout.")
    output = None if options.output == "-" else Path(options.output)
    rejects = Path(options.rejects) if options.rejects else (None if output is None else Path(options.output + ".rejects.jsonl"))
    if options.skip_invalid and rejects is None:
        raise InvalidInputError("With output to stdout, --skip-invalid needs --rejects FILE.")
    if options.max_rejects is not None and not options.skip_invalid:
        raise InvalidInputError("--max-rejects needs --skip-invalid (without it the first bad record stops the run).")
    count, share = options.max_rejects or (None, None)
    plan = Plan(
        input=options.input, output=output, rejects=rejects if options.skip_invalid else None,
        report=Path(options.report) if options.report else None, input_format=input_format,
        output_format=_output_format(options.output_format, options.output), labels=_labels(options),
        text_fields=list(options.text_fields or ("text",)), max_rejects=count, max_reject_share=share,
    )
    _check_distinct_files(plan, options.labels_file)
    if options.report:
        require_matplotlib()
    if options.input != "-" and (not os.path.exists(options.input) or os.path.isdir(options.input)):
        code = errno.EISDIR if os.path.isdir(options.input) else errno.ENOENT
        raise OSError(code, os.strerror(code), options.input)
    return plan


def _check_numbers(options: ClassifyOptions) -> None:
    if options.only_above and options.threshold is None:
        raise InvalidInputError("--only-above needs --threshold.")
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        raise InvalidInputError(f"--threshold must be between 0 and 1, not {options.threshold}.")
    if options.flush_every < 1:
        raise InvalidInputError("--flush-every must be at least 1.")


def _check_ray(options: ClassifyOptions) -> None:
    if options.ray is None and options.workers is not None:
        raise InvalidInputError("--workers needs --ray.")
    if options.workers is not None and options.workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, not {options.workers}.")


def _output_format(requested: str | None, output: str) -> str:
    """The format asked for, or the one the output's name implies; a mismatch is refused."""
    named = None if output == "-" else output_format_from_name(output)
    if requested is None:
        if named == "txt":
            raise InvalidInputError(f"{output}: a .txt output cannot hold labels and scores; use .jsonl, .csv or .tsv.")
        return named or "jsonl"
    clash = ((named in ("csv", "tsv") and requested != named)
             or (named == "jsonl" and requested in ("csv", "tsv", "label-studio"))
             or (named == "label-studio" and requested in ("csv", "tsv")))
    if clash:
        raise InvalidInputError(
            f"--format {requested} does not match the output name {output}; rename the output or change --format."
        )
    return requested


def _check_distinct_files(plan: Plan, labels_file: str | None) -> None:
    """Never write to a file we read, and never write two things into one file."""
    reads = [("INPUT", Path(plan.input))] if plan.input != "-" else []
    if labels_file:
        reads.append(("--labels-file", Path(labels_file)))
    writes = [(name, path) for name, path in (("OUTPUT", plan.output), ("--rejects", plan.rejects),
                                              ("state file", plan.state), ("--report", plan.report)) if path is not None]
    for i, (name, path) in enumerate(writes):
        for other, other_path in reads + writes[:i]:
            if same_file(path, other_path):
                raise InvalidInputError(
                    f"{name} {path} is the same file as {other} {other_path}; writing it would destroy "
                    f"{'your input' if (other, other_path) in reads else 'the other'}. Pick another path."
                )


def _labels(options: ClassifyOptions) -> list[str]:
    if options.labels_field is not None:
        return []  # each record names its own (see labelsets)
    if options.labels_file:
        try:
            lines = Path(options.labels_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"Cannot read --labels-file {options.labels_file}: {exc}") from exc
        return parse_labels([line.strip() for line in lines if line.strip()])
    return parse_labels(options.labels)


def _check_long_text_and_label_sets(options: ClassifyOptions) -> None:
    """--long-text, --max-windows and --labels-field: combinations that cannot work."""
    if options.max_windows is not None and (options.long_text != "chunk" or options.max_windows < 1):
        raise InvalidInputError("--max-windows needs --long-text chunk and a count of at least 1.")
    if options.labels_field is not None and options.ray is not None:
        raise InvalidInputError("--labels-field does not run on --ray yet; run without --ray.")
    if options.labels_field is not None and options.label_config:
        raise InvalidInputError("--label-config needs the labels up front (--labels or --labels-file); with "
                                "--labels-field the config is written beside the output when the run completes.")
