"""The open files of a run: a fresh start or a checked resume, one checkpoint per chunk, closing.

A fresh run refuses to replace anything without ``--overwrite`` and checkpoints "nothing done"
at once. ``--resume`` checks the state file, the output, the rejects file and the consumed
input (see ``checkpoint``) and only then appends, after cutting off whatever a crash left
beyond the last checkpoint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from zsl_onnx import InvalidInputError

from .consistency import check_consistent
from .checkpoint import (
    Appender,
    FileMark,
    LineTracker,
    ResumeError,
    State,
    WholeFile,
    load_state,
    settings_diff,
    verify_prefix,
    write_state,
)
from .options import ClassifyOptions
from .plan import Plan
from .progress import Progress
from .readers import byte_lines, read_records
from .records import Invalid, Record
from .report import Stats
from .labelsets import check_records
from .safefiles import refuse_existing

__all__ = ["Files", "close_files", "open_files", "save_checkpoint"]

_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of no bytes


@dataclass
class Files:
    """The open files of a run and where its last checkpoint left them."""

    source: IO[bytes]
    tracker: LineTracker | WholeFile
    items: Iterator[Record | Invalid]
    out: Appender | None  # None: stdout
    rejects: Appender | None
    done: int
    columns: list[str] | None
    stats: Stats
    input_mark: FileMark


def open_files(options: ClassifyOptions, plan: Plan, settings: dict[str, Any], progress: Progress) -> Files:
    """Open the input and the outputs: a checked resume with --resume, else a fresh start."""
    source: IO[bytes] = sys.stdin.buffer if plan.input == "-" else open(plan.input, "rb")  # noqa: SIM115
    try:
        tracker: LineTracker | WholeFile
        if plan.input_format == "parquet":  # rows, not lines: the whole file stands for the consumed part
            tracker = WholeFile(source)
            records = read_records(source, "parquet", plan.text_fields, separator=" ")
        else:
            tracker = LineTracker(byte_lines(source, plan.input), plan.input)
            records = read_records(tracker, plan.input_format, plan.text_fields, separator=" ")
        items = check_records(records, options, plan)
        if options.resume:
            return _resume(options, plan, settings, source, tracker, items, progress)
        return _start(options, plan, settings, source, tracker, items, progress)
    except BaseException:
        if source is not sys.stdin.buffer:
            source.close()
        raise


def _start(options: ClassifyOptions, plan: Plan, settings: dict[str, Any], source: IO[bytes],
           tracker: LineTracker | WholeFile, items: Iterator[Record | Invalid], progress: Progress) -> Files:
    """A fresh run: refuse to replace anything without --overwrite, then checkpoint 'nothing done'."""
    out_path, state_path = plan.output, plan.state
    if out_path is not None and state_path is not None:
        if os.path.lexists(state_path) and not options.overwrite:
            raise InvalidInputError(
                f"{out_path} is from an interrupted run; pass --resume to continue it or --overwrite to start again."
            )
        if os.path.lexists(out_path) and not options.overwrite:
            raise InvalidInputError(f"{out_path} exists; pass --overwrite to replace it.")
    if not options.overwrite:
        for path, what in ((plan.rejects, "rejects file"), (plan.report, "report")):
            if path is not None:
                refuse_existing(path, what)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    files = Files(source, tracker, items, None, None, 0, None, Stats(), tracker.mark())
    progress.stdout = out_path is None
    try:
        if out_path is not None:
            files.out = Appender(out_path, replace=options.overwrite)
            progress.output = out_path
        if plan.rejects is not None:
            files.rejects = Appender(plan.rejects, replace=options.overwrite, what="rejects file")
        save_checkpoint(plan, settings, files, progress)
    except BaseException:
        close_files(files)
        raise
    return files


def _resume(options: ClassifyOptions, plan: Plan, settings: dict[str, Any], source: IO[bytes],
            tracker: LineTracker | WholeFile, items: Iterator[Record | Invalid], progress: Progress) -> Files:
    """Check the state, the output, the rejects and the consumed input; only then append."""
    assert plan.output is not None and plan.state is not None
    state = load_state(plan.state, plan.output)
    differ = settings_diff(state.settings, settings)
    if differ:
        raise ResumeError(
            "--resume needs the settings of the interrupted run; these differ:\n  " + "\n  ".join(differ)
            + "\nRerun with the earlier settings, or start again with --overwrite."
        )
    if plan.report is not None and not options.overwrite:
        refuse_existing(plan.report, "report")
    out = verify_prefix(plan.output, state.output, "output", quoted=plan.output_format in ("csv", "tsv"))
    rejects_mark = state.rejects or FileMark(0, _EMPTY_SHA256)
    rejects = None if plan.rejects is None else verify_prefix(plan.rejects, rejects_mark, "rejects file")
    stats = check_consistent(plan, state, out, rejects)
    _skip_done(items, tracker, state, plan.input)
    files = Files(source, tracker, items, None, None, state.records, state.columns, stats, state.input)
    try:
        files.out = Appender(plan.output, state.output, out.digest)
        if rejects is not None and plan.rejects is not None:
            files.rejects = Appender(plan.rejects, rejects_mark, rejects.digest, what="rejects file")
    except BaseException:
        close_files(files)
        raise
    progress.output, progress.saved = plan.output, state.records
    return files


def _skip_done(items: Iterator[Record | Invalid], tracker: LineTracker | WholeFile, state: State, source: str) -> None:
    """Consume the records already classified, checking they are the bytes that were."""
    for _ in range(state.records):
        if next(items, None) is None:
            break
    if tracker.mark() != state.input:
        raise ResumeError(
            f"The input {source} changed since the run stopped: its first {state.records} records "
            f"({state.input.bytes} bytes) are not the ones already classified, so resuming would skip "
            "or repeat records. Restore the original input, or start again with --overwrite."
        )


def close_files(files: Files) -> None:
    """Close the outputs and the input (never stdin); safe to call twice."""
    for appender in (files.out, files.rejects):
        if appender is not None:
            appender.close()
    if files.source is not sys.stdin.buffer:
        files.source.close()


def save_checkpoint(plan: Plan, settings: dict[str, Any], files: Files, progress: Progress) -> None:
    """Flush and fsync the outputs, then record them in the state file (atomically)."""
    if files.out is None or plan.output is None or plan.state is None:
        sys.stdout.flush()
        return
    out_mark = files.out.sync()
    rejects_mark = None if files.rejects is None else files.rejects.sync()
    state = State(settings, files.done, files.input_mark, out_mark, rejects_mark, files.columns, files.stats.to_json())
    write_state(plan.state, state, plan.output)
    progress.output, progress.saved = plan.output, files.done
