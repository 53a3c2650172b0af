"""One zsl-classify run: load, open or resume, the chunk loop, finish.

Records are read, classified and written in chunks (``--flush-every``). After each chunk the
output and rejects files are flushed and fsynced, then a state file next to the output
records what is complete, with proof (see ``checkpoint``). ``--resume`` checks that proof,
cuts off whatever a crash left after the last checkpoint and skips the records already
done, so the result is byte for byte what an uninterrupted run writes.

The parts of a run, in order: ``make_plan`` (check the options and paths, touch nothing),
``_load`` (model, labels, template), ``open_files`` (lock, then resume or start fresh),
``_classify_all`` (the chunk loop, one checkpoint per chunk) and ``_finish`` (summary,
report, exit status). A ``fault`` callable, when given, is called at each chunk boundary:
``("written", i)`` once chunk ``i`` is in the output but not yet checkpointed, then
``("checkpointed", i)``; raising from it stops the run exactly there, as a crash would.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from zsl_onnx import ZeroShotClassifier, __version__
from zsl_onnx.internals import FileLock, build_hypotheses

from .annotation import LABEL_STUDIO_HEAD, LABEL_STUDIO_TAIL
from .checkpoint import FileMark, LineTracker, WholeFile
from .chunks import ChunkClassifier, LocalChunks, RayChunks
from .errors import StopRunError
from .files import Files, close_files, open_files, save_checkpoint
from .options import ClassifyOptions
from .plan import Plan, make_plan
from .progress import Progress, progress_bar
from .records import Invalid, Record
from .report import Stats, draw_report, summary
from .rows import emit, write_chunk
from .sidecars import check_sidecar, sidecar_text, write_sidecar

__all__ = ["Fault", "run"]

Fault = Callable[[str, int], None]
"""Called as ``fault(point, chunk_index)`` at "written" and "checkpointed"; raising is a crash there."""


def run(options: ClassifyOptions, progress: Progress, fault: Fault | None = None) -> int:
    """Classify the input of ``options``; 0 when every record was classified or rejected.

    ``progress`` follows the checkpoints, so the caller can say what to do after an error.
    """
    plan = make_plan(options)
    if options.label_config:
        sys.stdout.write(sidecar_text(options, "label-studio", plan.labels))
        return 0
    with ExitStack() as stack:
        clf, settings = _load(options, plan)
        stack.callback(clf.close)
        for path in (plan.output, plan.rejects):
            if path is not None:
                stack.enter_context(FileLock(path))
        check_sidecar(options, plan)
        files = open_files(options, plan, settings, progress)
        stack.callback(close_files, files)
        write_sidecar(options, plan, plan.labels)
        if plan.output_format == "label-studio" and (files.out is None or files.out.bytes == 0):
            emit(files.out, LABEL_STUDIO_HEAD)  # the array opens once; a resume past it appends
        stop = _classify_all(options, plan, clf, settings, files, progress, fault)
        if stop is None:
            _complete(options, plan, files)
        close_files(files)
        return _finish(options, plan, files.stats, stop)


def _complete(options: ClassifyOptions, plan: Plan, files: Files) -> None:
    """Close a Label Studio array and write a config that needed every record's labels.

    The closing bracket follows the last checkpoint, so a crash before the state file is gone
    leaves a run that ``--resume`` cuts back to that checkpoint and closes again.
    """
    if plan.output_format == "label-studio":
        emit(files.out, LABEL_STUDIO_TAIL)
        if files.out is not None:
            files.out.sync()
    if options.labels_field is not None:
        write_sidecar(options, plan, files.stats.labels_seen)


# -- model and settings ---------------------------------------------------------------------


def _load(options: ClassifyOptions, plan: Plan) -> tuple[ChunkClassifier, dict[str, Any]]:
    """The model, here or (--ray) on actors that have loaded it; and the settings of the run."""
    label_sets = None if options.labels_field is None else _label_sets
    if options.ray is not None:
        clf: ChunkClassifier = RayChunks(options, plan.labels, label_sets)
    else:
        model = ZeroShotClassifier.from_pretrained(
            options.model, variant=options.variant, threads=options.threads, max_length=options.max_length,
            local_files_only=options.offline,
        )
        clf = LocalChunks(model, plan.labels, options.template, options.multi_label, options.batch_size,
                          options.long_text, options.max_windows, label_sets)
    try:
        build_hypotheses(plan.labels or ["label"], clf.hypothesis_template)  # a bad template fails now, not after opening files
    except BaseException:
        clf.close()
        raise
    return clf, _settings(options, plan, clf, clf.hypothesis_template)


def _settings(options: ClassifyOptions, plan: Plan, clf: ChunkClassifier, template: str) -> dict[str, Any]:
    """Every setting that can change a byte of output: --resume needs them all unchanged."""
    return {
        "model": str(options.model), "--variant": clf.variant, "--max-length": clf.max_length,
        "input": os.path.abspath(plan.input), "--input-format": plan.input_format,
        "--format": plan.output_format, "--text-field": plan.text_fields, "--field-prefix": options.field_prefix,
        "labels": plan.labels, "--template": template, "--multi-label": options.multi_label,
        "--threshold": options.threshold, "--only-above": options.only_above, "--skip-invalid": options.skip_invalid,
        "--rejects": None if plan.rejects is None else os.path.abspath(plan.rejects),
        "--batch-size": options.batch_size, "--flush-every": options.flush_every, "--threads": options.threads,
        "zsl-onnx": __version__, "onnxruntime": _ort_version(), **_new_settings(options),
    }


def _new_settings(options: ClassifyOptions) -> dict[str, Any]:
    """Settings added since state files were first written: recorded only when not the default, so a
    run without them keeps the state file (and --resume) it always had."""
    named = {"--long-text": None if options.long_text == "truncate" else options.long_text,
             "--max-windows": options.max_windows, "--labels-field": options.labels_field,
             "--truncation-field": options.truncation_field}
    return {name: value for name, value in named.items() if value is not None}


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


# -- the chunk loop -------------------------------------------------------------------------


def _classify_all(options: ClassifyOptions, plan: Plan, clf: ChunkClassifier, settings: dict[str, Any],
                  files: Files, progress: Progress, fault: Fault | None) -> str | None:
    """Classify chunk by chunk, one checkpoint each; returns why the run stopped early, if it did."""
    bar = progress_bar(None if plan.input == "-" else os.path.getsize(plan.input), files.tracker.bytes, options.quiet)
    try:
        cut = (_cut(chunk, marks, options.skip_invalid)
               for chunk, marks in _chunks(files.items, files.tracker, options.flush_every))
        for index, ((chunk, marks, stop), results) in enumerate(clf.map(cut, _texts)):
            used = chunk[:stop]
            write_chunk(options, plan, clf, files, used, results)
            if fault is not None:
                fault("written", index)
            if used:
                files.done += len(used)
                files.input_mark = marks[len(used) - 1]
            save_checkpoint(plan, settings, files, progress)
            if fault is not None:
                fault("checkpointed", index)
            if bar is not None:
                bar.set_postfix_str(f"{files.stats.read:,} records", refresh=False)
                bar.update(files.tracker.bytes - bar.n)
            if stop is not None:
                return _bad_record_stop(plan, files.stats, chunk[stop])
            limit = _reject_limit_hit(plan, files.stats)
            if limit:
                return limit
    finally:
        if bar is not None:
            bar.close()
    return None


def _chunks(items: Iterator[Record | Invalid], tracker: LineTracker | WholeFile,
            size: int) -> Iterator[tuple[list[Record | Invalid], list[FileMark]]]:
    """Chunks of items, each item with the input position right after it (for checkpoints)."""
    chunk: list[Record | Invalid] = []
    marks: list[FileMark] = []
    for item in items:
        chunk.append(item)
        marks.append(tracker.mark())
        if len(chunk) == size:
            yield chunk, marks
            chunk, marks = [], []
    if chunk:
        yield chunk, marks


def _cut(chunk: list[Record | Invalid], marks: list[FileMark],
         skip_invalid: bool) -> tuple[list[Record | Invalid], list[FileMark], int | None]:
    """Without --skip-invalid a chunk is used up to its first bad record (stop), which ends the run."""
    stop = None if skip_invalid else next((i for i, item in enumerate(chunk) if isinstance(item, Invalid)), None)
    return chunk, marks, stop


def _texts(cut: tuple[list[Record | Invalid], list[FileMark], int | None]) -> list[str]:
    """The texts to classify of a cut chunk: its valid records before the stop."""
    chunk, _, stop = cut
    return [item.text for item in chunk[:stop] if isinstance(item, Record)]


def _label_sets(cut: tuple[list[Record | Invalid], list[FileMark], int | None]) -> list[list[str]]:
    """With --labels-field: the label set of each text of :func:`_texts`, in the same order."""
    chunk, _, stop = cut
    return [list(item.labels or ()) for item in chunk[:stop] if isinstance(item, Record)]


# -- stops and the end ----------------------------------------------------------------------


def _bad_record_stop(plan: Plan, stats: Stats, bad: Record | Invalid) -> str:
    assert isinstance(bad, Invalid)
    stats.read += 1
    where = "the rejects file" if plan.rejects is None else str(plan.rejects)
    return (f"{plan.input}:{bad.line}: {bad.reason}. Fix the record and rerun with --resume (the "
            f"{stats.written} records before it are written), or pass --skip-invalid to send such records to {where}.")


def _reject_limit_hit(plan: Plan, stats: Stats) -> str | None:
    if plan.max_rejects is not None and stats.rejected > plan.max_rejects:
        limit = f"{plan.max_rejects} records"
    elif plan.max_reject_share is not None and stats.rejected > plan.max_reject_share * stats.read:
        limit = f"{plan.max_reject_share:.1%} of the {stats.read} records read"
    else:
        return None
    return (f"stopped: {stats.rejected} rejected records exceed --max-rejects ({limit}); see {plan.rejects}. "
            "Fix the input (or --text-field) and start again with --overwrite, or raise --max-rejects and --resume.")


def _finish(options: ClassifyOptions, plan: Plan, stats: Stats, stop: str | None) -> int:
    """Summary, report and exit status: non-zero when stopped early or nothing was classified."""
    if stop is None and plan.state is not None:
        plan.state.unlink(missing_ok=True)  # complete: no state file means nothing to resume
    labels = plan.labels or stats.labels_seen  # --labels-field: every label the records named
    if not options.quiet:
        print(summary(stats, labels, plan.rejects), file=sys.stderr)
    if plan.report is not None and stats.classified:
        draw_report(stats, labels, plan.report, replace=options.overwrite)
    if stop is not None:
        raise StopRunError(stop)
    if stats.classified == 0:
        why = f"all {stats.rejected} records were rejected (first: {stats.first_reject})" if stats.rejected else "the input holds no records"
        raise StopRunError(f"nothing was classified: {why}. Check the input and --text-field.")
    return 0
