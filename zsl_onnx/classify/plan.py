"""Every check of a run that needs no model and writes nothing: formats, paths, limits, labels.

A mistake in the options is refused here, before a model is loaded or a file is touched, so
an hours-long run never fails at its end for something that could be told at its start.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from zsl_onnx import InvalidInputError
from zsl_onnx.internals import LOCK_SUFFIX, check_threads, parse_labels, same_file

from .options import ClassifyOptions
from .records import FORMATS, format_from_name, output_format_from_name
from .report import require_matplotlib
from .safefiles import read_limited

__all__ = ["MAX_LABELS", "MAX_LABELS_FILE_BYTES", "STATE_SUFFIX", "Plan", "make_plan"]

STATE_SUFFIX = ".zsl-state.json"
MAX_LABELS_FILE_BYTES = 1 << 20
MAX_LABELS = 10_000  # every record is scored against every label: more is a mistake, not a label set
_FLAGS = {"model": "BUNDLE_OR_MODEL_ID", "input": "INPUT", "output": "-o", "output_format": "--format",
          "text_fields": "--text-field"}
_LABEL_LINES = re.compile(r"\r\n|\r|\n")  # not str.splitlines: U+2028, \x0c, \x1c-\x1e, \x85 belong to a label


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
    _check_encodings(options)
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
    if plan.report is not None:
        require_matplotlib(plan.report)
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
    try:
        if options.ray is None:  # on Ray, each actor checks against its own machine's cores
            check_threads(options.threads)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--{exc}") from None


def _check_encodings(options: ClassifyOptions) -> None:
    """Every argument is written into the state file and the output as UTF-8: a byte that is not
    UTF-8 (a file name or a label from another encoding) is refused before anything is opened."""
    for field in fields(options):
        value = getattr(options, field.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str) and not _encodable(item):
                flag = _FLAGS.get(field.name, "--" + field.name.replace("_", "-"))
                raise InvalidInputError(
                    f"{flag} {os.fsencode(item)!r} is not valid UTF-8 text; zsl-classify records its arguments "
                    "in UTF-8. Rename the file, or pass the text in UTF-8."
                )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    locks = [(f"lock of {path}", path.with_name(path.name + LOCK_SUFFIX)) for path in (plan.output, plan.rejects)
             if path is not None]
    writes = [(name, path) for name, path in (("OUTPUT", plan.output), ("--rejects", plan.rejects),
                                              ("state file", plan.state), ("--report", plan.report), *locks)
              if path is not None]
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
        path = Path(options.labels_file)
        try:
            text = read_limited(path, MAX_LABELS_FILE_BYTES, "--labels-file").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"--labels-file {path} is not UTF-8 text (byte {exc.start + 1}); save it as UTF-8."
            ) from None
        except OSError as exc:
            raise InvalidInputError(f"Cannot read --labels-file {path}: {exc.strerror or exc}.") from None
        lines = [line.strip() for line in _LABEL_LINES.split(text.removeprefix("\ufeff"))]
        labels = parse_labels([line for line in lines if line])
    else:
        labels = parse_labels(options.labels)
    if len(labels) > MAX_LABELS:
        raise InvalidInputError(
            f"{len(labels):,} labels is more than {MAX_LABELS:,}: every record would be scored against each. "
            "Check that --labels-file is the right file."
        )
    return labels


def _check_long_text_and_label_sets(options: ClassifyOptions) -> None:
    """--long-text, --max-windows and --labels-field: combinations that cannot work."""
    if options.max_windows is not None and (options.long_text != "chunk" or options.max_windows < 1):
        raise InvalidInputError("--max-windows needs --long-text chunk and a count of at least 1.")
    if options.labels_field is not None and options.label_config:
        raise InvalidInputError("--label-config needs the labels up front (--labels or --labels-file); with "
                                "--labels-field the config is written beside the output when the run completes.")
