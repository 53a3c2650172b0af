"""`zsl-classify`: pre-annotate a corpus from the command line, streaming and resumable.

Records are read, classified and written in chunks (``--flush-every``). After each chunk the
output and rejects files are flushed and fsynced, then a state file next to the output
records what is complete, with proof (see ``_checkpoint``). ``--resume`` checks that proof,
cuts off whatever a crash left after the last checkpoint and skips the records already
done, so the result is byte for byte what an uninterrupted run writes.

The parts of a run, in order: ``_plan`` (check the options and paths, touch nothing),
``_load`` (model, labels, template), ``_open_run`` (lock, then resume or start fresh),
``_classify_all`` (the chunk loop, one checkpoint per chunk) and ``_finish`` (summary,
report, exit status).
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import math
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._checkpoint import (
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
from ._classifier import DEFAULT_BATCH_SIZE, ZeroShotClassifier
from ._classify_ray import ChunkClassifier, LocalChunks, RayChunks, add_arguments, check_arguments
from ._corpus import (
    FORMATS,
    OUTPUT_FORMATS,
    Invalid,
    Record,
    argilla_record,
    byte_lines,
    classified_fields,
    csv_header,
    format_from_name,
    output_fields,
    read_records,
    refuse_collisions,
    render,
)
from ._exceptions import InvalidInputError, ZslOnnxError
from ._hypotheses import DEFAULT_TEMPLATE, build_hypotheses, parse_labels
from ._lock import FileLock
from ._paths import same_file
from ._version import __version__

STATE_SUFFIX = ".zsl-state.json"
BINS = 10
LOG_EVERY_S = 10.0  # progress lines when stderr is not a terminal
SCORE_DIGITS = 6

# Fault injection for tests: called as _fault(point, chunk_index) at "written" (a chunk is in
# the output but not yet checkpointed) and "checkpointed". Raising from it is a crash there.
_fault: Callable[[str, int], None] | None = None


class InvalidRecordError(InvalidInputError):
    """An input record cannot be classified (and --skip-invalid was not given)."""


class StopRunError(ZslOnnxError):
    """The run stopped before the end of the input; the last checkpoint can be resumed."""


@dataclass
class Stats:
    read: int = 0
    classified: int = 0
    rejected: int = 0
    written: int = 0
    top_labels: Counter[str] = field(default_factory=Counter)
    histogram: list[int] = field(default_factory=lambda: [0] * BINS)
    first_reject: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in ("read", "classified", "rejected", "written")},
                "top_labels": dict(self.top_labels), "histogram": self.histogram, "first_reject": self.first_reject}

    @classmethod
    def from_json(cls, data: Any) -> Stats:
        return cls(data["read"], data["classified"], data["rejected"], data["written"],
                   Counter(data["top_labels"]), list(data["histogram"]), data.get("first_reject"))


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


@dataclass
class Progress:
    """What main() needs to say on Ctrl-C: how far the last checkpoint got, if anywhere."""

    output: Path | None = None  # set once the output file is created
    saved: int | None = None  # records covered by the last checkpoint; None: none written yet
    stdout: bool = False


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
    parser.add_argument("--skip-invalid", action="store_true", help="send bad records to the rejects file and go on")
    parser.add_argument("--max-rejects", type=_reject_limit,
                        help="with --skip-invalid: stop when rejects exceed N records, or N%% of the records read so far")
    parser.add_argument("--rejects", help="rejects file (JSONL; default: OUTPUT.rejects.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run with the same arguments")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--offline", action="store_true", help="never contact the Hugging Face Hub; use the local cache")
    parser.add_argument("--report", help="also draw the label distribution and score histogram to this PNG (needs matplotlib)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = Progress()
    try:
        return _run(args, progress)
    except ZslOnnxError as exc:
        print(f"zsl-classify: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"zsl-classify: error: {_os_error(exc, progress)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"\nzsl-classify: {_interrupted(progress)}", file=sys.stderr)
        return 130
    return 1


def _run(args: argparse.Namespace, progress: Progress) -> int:
    plan = _plan(args)
    with ExitStack() as stack:
        clf, settings = _load(args, plan)
        stack.callback(clf.close)
        for path in (plan.output, plan.rejects):
            if path is not None:
                stack.enter_context(FileLock(path))
        files = _open_run(args, plan, settings, progress)
        stack.callback(_close, files)
        stop = _classify_all(args, plan, clf, settings, files, progress)
        _close(files)
        return _finish(args, plan, files.stats, stop)


# -- checks ---------------------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> Plan:
    """Every check that needs no model and writes nothing."""
    input_format = args.input_format or (None if args.input == "-" else format_from_name(args.input))
    if input_format is None:
        raise InvalidInputError(
            f"Cannot tell the format of {'stdin' if args.input == '-' else args.input}; "
            f"pass --input-format ({', '.join(FORMATS)})."
        )
    _check_numbers(args)
    check_arguments(args)
    if args.resume and (args.output == "-" or args.input == "-"):
        raise InvalidInputError("--resume needs an input file and an output file, not stdin/stdout.")
    output = None if args.output == "-" else Path(args.output)
    rejects = Path(args.rejects) if args.rejects else (None if output is None else Path(args.output + ".rejects.jsonl"))
    if args.skip_invalid and rejects is None:
        raise InvalidInputError("With output to stdout, --skip-invalid needs --rejects FILE.")
    if args.max_rejects is not None and not args.skip_invalid:
        raise InvalidInputError("--max-rejects needs --skip-invalid (without it the first bad record stops the run).")
    count, share = args.max_rejects or (None, None)
    plan = Plan(
        input=args.input, output=output, rejects=rejects if args.skip_invalid else None,
        report=Path(args.report) if args.report else None, input_format=input_format,
        output_format=_output_format(args.output_format, args.output), labels=_labels(args),
        text_fields=args.text_fields or ["text"], max_rejects=count, max_reject_share=share,
    )
    _check_distinct_files(plan, args.labels_file)
    if args.report:
        _require_matplotlib()
    if args.input != "-" and (not os.path.exists(args.input) or os.path.isdir(args.input)):
        code = errno.EISDIR if os.path.isdir(args.input) else errno.ENOENT
        raise OSError(code, os.strerror(code), args.input)
    return plan


def _check_numbers(args: argparse.Namespace) -> None:
    if args.only_above and args.threshold is None:
        raise InvalidInputError("--only-above needs --threshold.")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InvalidInputError(f"--threshold must be between 0 and 1, not {args.threshold}.")
    if args.flush_every < 1:
        raise InvalidInputError("--flush-every must be at least 1.")


def _output_format(requested: str | None, output: str) -> str:
    """The format asked for, or the one the output's name implies; a mismatch is refused."""
    named = None if output == "-" else format_from_name(output)
    if requested is None:
        if named == "txt":
            raise InvalidInputError(f"{output}: a .txt output cannot hold labels and scores; use .jsonl, .csv or .tsv.")
        return named or "jsonl"
    clash = (named in ("csv", "tsv") and requested != named) or (named == "jsonl" and requested in ("csv", "tsv"))
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


def _labels(args: argparse.Namespace) -> list[str]:
    if args.labels_file:
        try:
            lines = Path(args.labels_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"Cannot read --labels-file {args.labels_file}: {exc}") from exc
        return parse_labels([line.strip() for line in lines if line.strip()])
    return parse_labels(args.labels)


# -- model and settings ---------------------------------------------------------------------


def _load(args: argparse.Namespace, plan: Plan) -> tuple[ChunkClassifier, dict[str, Any]]:
    """The model, here or (--ray) on actors that have loaded it; and the settings of the run."""
    if args.ray is not None:
        clf: ChunkClassifier = RayChunks(args, plan.labels)
    else:
        model = ZeroShotClassifier.from_pretrained(
            args.model, variant=args.variant, threads=args.threads, max_length=args.max_length,
            local_files_only=args.offline,
        )
        clf = LocalChunks(model, plan.labels, args.template, args.multi_label, args.batch_size)
    try:
        build_hypotheses(plan.labels, clf.hypothesis_template)  # a bad template fails now, not after opening files
    except BaseException:
        clf.close()
        raise
    return clf, _settings(args, plan, clf, clf.hypothesis_template)


def _settings(args: argparse.Namespace, plan: Plan, clf: ChunkClassifier, template: str) -> dict[str, Any]:
    """Every setting that can change a byte of output: --resume needs them all unchanged."""
    return {
        "model": str(args.model), "--variant": clf.variant, "--max-length": clf.max_length,
        "input": os.path.abspath(plan.input), "--input-format": plan.input_format,
        "--format": plan.output_format, "--text-field": plan.text_fields, "--field-prefix": args.field_prefix,
        "labels": plan.labels, "--template": template, "--multi-label": args.multi_label,
        "--threshold": args.threshold, "--only-above": args.only_above, "--skip-invalid": args.skip_invalid,
        "--rejects": None if plan.rejects is None else os.path.abspath(plan.rejects),
        "--batch-size": args.batch_size, "--flush-every": args.flush_every, "--threads": args.threads,
        "zsl-onnx": __version__, "onnxruntime": _ort_version(),
    }


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


# -- opening: resume or fresh start ---------------------------------------------------------


def _open_run(args: argparse.Namespace, plan: Plan, settings: dict[str, Any], progress: Progress) -> Files:
    source: IO[bytes] = sys.stdin.buffer if plan.input == "-" else open(plan.input, "rb")  # noqa: SIM115
    try:
        tracker: LineTracker | WholeFile
        if plan.input_format == "parquet":  # rows, not lines: the whole file stands for the consumed part
            tracker = WholeFile(source)
            records = read_records(source, "parquet", plan.text_fields, separator=" ")
        else:
            tracker = LineTracker(byte_lines(source), plan.input)
            records = read_records(tracker, plan.input_format, plan.text_fields, separator=" ")
        reserved = output_fields(plan.output_format, args.threshold, args.field_prefix)
        items = refuse_collisions(records, reserved)
        if args.resume:
            return _resume(plan, settings, source, tracker, items, progress)
        return _start(args, plan, settings, source, tracker, items, progress)
    except BaseException:
        if source is not sys.stdin.buffer:
            source.close()
        raise


def _start(args: argparse.Namespace, plan: Plan, settings: dict[str, Any], source: IO[bytes],
           tracker: LineTracker | WholeFile, items: Iterator[Record | Invalid], progress: Progress) -> Files:
    """A fresh run: refuse to replace anything without --overwrite, then checkpoint 'nothing done'."""
    out_path, state_path = plan.output, plan.state
    if out_path is not None and state_path is not None:
        if os.path.lexists(state_path) and not args.overwrite:
            raise InvalidInputError(
                f"{out_path} is from an interrupted run; pass --resume to continue it or --overwrite to start again."
            )
        if os.path.lexists(out_path) and not args.overwrite:
            raise InvalidInputError(f"{out_path} exists; pass --overwrite to replace it.")
        out_path.parent.mkdir(parents=True, exist_ok=True)
    files = Files(source, tracker, items, None, None, 0, None, Stats(), tracker.mark())
    progress.stdout = out_path is None
    try:
        if out_path is not None:
            files.out = Appender(out_path)
            progress.output = out_path
        if plan.rejects is not None:
            files.rejects = Appender(plan.rejects)
        _checkpoint(plan, settings, files, progress)
    except BaseException:
        _close(files)
        raise
    return files


def _resume(plan: Plan, settings: dict[str, Any], source: IO[bytes], tracker: LineTracker | WholeFile,
            items: Iterator[Record | Invalid], progress: Progress) -> Files:
    """Check the state, the output, the rejects and the consumed input; only then append."""
    assert plan.output is not None and plan.state is not None
    state = load_state(plan.state, plan.output)
    differ = settings_diff(state.settings, settings)
    if differ:
        raise ResumeError(
            "--resume needs the settings of the interrupted run; these differ:\n  " + "\n  ".join(differ)
            + "\nRerun with the earlier settings, or start again with --overwrite."
        )
    out_hash = verify_prefix(plan.output, state.output, "output")
    rejects_hash = None
    if plan.rejects is not None:
        rejects_hash = verify_prefix(plan.rejects, state.rejects or FileMark(0, _EMPTY_SHA256), "rejects file")
    _skip_done(items, tracker, state, plan.input)
    files = Files(source, tracker, items, None, None, state.records, state.columns, Stats.from_json(state.stats), state.input)
    try:
        files.out = Appender(plan.output, state.output, out_hash)
        if plan.rejects is not None:
            files.rejects = Appender(plan.rejects, state.rejects or FileMark(0, _EMPTY_SHA256), rejects_hash)
    except BaseException:
        _close(files)
        raise
    progress.output, progress.saved = plan.output, state.records
    return files


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


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


def _close(files: Files) -> None:
    for appender in (files.out, files.rejects):
        if appender is not None:
            appender.close()
    if files.source is not sys.stdin.buffer:
        files.source.close()


# -- the chunk loop -------------------------------------------------------------------------


def _classify_all(args: argparse.Namespace, plan: Plan, clf: ChunkClassifier,
                  settings: dict[str, Any], files: Files, progress: Progress) -> str | None:
    """Classify chunk by chunk, one checkpoint each; returns why the run stopped early, if it did."""
    bar = _progress_bar(None if plan.input == "-" else os.path.getsize(plan.input), files.tracker.bytes, args.quiet)
    try:
        cut = (_cut(chunk, marks, args.skip_invalid) for chunk, marks in _chunks(files.items, files.tracker, args.flush_every))
        for index, ((chunk, marks, stop), results) in enumerate(clf.map(cut, _texts)):
            used = chunk[:stop]
            _write_chunk(args, plan, clf, files, used, results)
            _call_fault("written", index)
            if used:
                files.done += len(used)
                files.input_mark = marks[len(used) - 1]
            _checkpoint(plan, settings, files, progress)
            _call_fault("checkpointed", index)
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


def _write_chunk(args: argparse.Namespace, plan: Plan, clf: ChunkClassifier, files: Files,
                 chunk: list[Record | Invalid], results: list[dict[str, Any]]) -> None:
    """Append a chunk's results (in the order of its valid records) and its rejects."""
    valid = [item for item in chunk if isinstance(item, Record)]
    rows = _rows(args, plan, clf, files.stats, valid, results)
    text = ""
    if plan.output_format in ("csv", "tsv") and rows:
        if files.columns is None:
            files.columns = list(rows[0])
            text = csv_header(files.columns, plan.output_format)
        for row in rows:
            _fit_columns(row, files.columns, plan.input)
    text += render(rows, plan.output_format, files.columns)
    bad = [item for item in chunk if isinstance(item, Invalid)]
    stats = files.stats
    stats.read += len(chunk)
    stats.written += len(rows)
    stats.rejected += len(bad)
    if bad and stats.first_reject is None:
        stats.first_reject = f"line {bad[0].line}: {bad[0].reason}"
    _emit(files.out, text)
    if files.rejects is not None and bad:
        files.rejects.write("".join(
            json.dumps({"line": b.line, "reason": b.reason, "raw": b.raw}, ensure_ascii=False) + "\n" for b in bad
        ))


def _rows(args: argparse.Namespace, plan: Plan, clf: ChunkClassifier, stats: Stats,
          valid: list[Record], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    agent = f"zsl-onnx:{Path(str(args.model)).name}:{clf.variant}"
    rows: list[dict[str, Any]] = []
    for record, result in zip(valid, results):
        if not np.isfinite(result["scores"]).all():
            raise StopRunError(
                f"{plan.input}:{record.line}: the model returned a non-finite score (NaN or infinity) for this "
                "record; nothing of its chunk was written. The model file may be damaged (load it with "
                "verify=True) or overflows on this text (try the fp32 variant)."
            )
        # Round once, here: the threshold then agrees with the top_score that is written.
        labels, scores = result["labels"], [round(float(x), SCORE_DIGITS) for x in result["scores"]]
        stats.classified += 1
        stats.top_labels[labels[0]] += 1
        stats.histogram[min(int(scores[0] * BINS), BINS - 1)] += 1
        if args.only_above and scores[0] < args.threshold:
            continue
        if plan.output_format == "argilla":
            rows.append(argilla_record(record, plan.text_fields, labels, scores, agent, args.multi_label, args.field_prefix))
        else:
            rows.append(classified_fields(record.fields, labels, scores, args.threshold, args.field_prefix))
    return rows


def _emit(out: Appender | None, text: str) -> None:
    if out is not None:
        out.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _fit_columns(row: dict[str, Any], columns: list[str], source: str) -> None:
    extra = [key for key in row if key not in columns]
    if extra:
        raise InvalidRecordError(
            f"{source}: a record has fields {extra} that the first record lacks, so they have no CSV "
            "column; write JSONL (-o out.jsonl) to keep records with varying fields."
        )


def _call_fault(point: str, index: int) -> None:
    if _fault is not None:
        _fault(point, index)


# -- checkpoints and stops ------------------------------------------------------------------


def _checkpoint(plan: Plan, settings: dict[str, Any], files: Files, progress: Progress) -> None:
    """Flush and fsync the outputs, then record them in the state file (atomically)."""
    if files.out is None or plan.output is None or plan.state is None:
        sys.stdout.flush()
        return
    out_mark = files.out.sync()
    rejects_mark = None if files.rejects is None else files.rejects.sync()
    state = State(settings, files.done, files.input_mark, out_mark, rejects_mark, files.columns, files.stats.to_json())
    write_state(plan.state, state, plan.output)
    progress.output, progress.saved = plan.output, files.done


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


# -- the end --------------------------------------------------------------------------------


def _finish(args: argparse.Namespace, plan: Plan, stats: Stats, stop: str | None) -> int:
    """Summary, report and exit status: non-zero when stopped early or nothing was classified."""
    if stop is None and plan.state is not None:
        plan.state.unlink(missing_ok=True)  # complete: no state file means nothing to resume
    if not args.quiet:
        print(_summary(stats, plan.labels, plan.rejects), file=sys.stderr)
    if plan.report is not None and stats.classified:
        _draw_report(stats, plan.labels, plan.report)
    if stop is not None:
        raise StopRunError(stop)
    if stats.classified == 0:
        why = f"all {stats.rejected} records were rejected (first: {stats.first_reject})" if stats.rejected else "the input holds no records"
        raise StopRunError(f"nothing was classified: {why}. Check the input and --text-field.")
    return 0


def _interrupted(progress: Progress) -> str:
    return "interrupted; " + _next_step(progress)


def _os_error(exc: OSError, progress: Progress) -> str:
    """One line: the path and the cause, then what to run once the cause is fixed."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; once that is fixed, " + _next_step(progress)


def _next_step(progress: Progress) -> str:
    """What to run next; it always agrees with what the state file lets --resume do."""
    if progress.stdout:
        return "rerun the command (output to stdout cannot be resumed)."
    if progress.output is None:
        return "rerun the command; no output was written."
    if progress.saved is None:
        return f"nothing was saved in {progress.output}: rerun the command with --overwrite."
    return (f"{progress.saved} records are saved in {progress.output}: rerun the same command with --resume "
            "to continue from there.")


def _progress_bar(total: int | None, start: int, quiet: bool) -> Any:
    """A tqdm bar over input bytes on a terminal; a log line every LOG_EVERY_S otherwise."""
    if quiet:
        return None
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    size = shutil.get_terminal_size((100, 20))  # a size of 0 (some ptys) would hide the bar
    return tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc="zsl-classify",
                file=sys.stderr if tty else _LogLines(sys.stderr), mininterval=0.1 if tty else LOG_EVERY_S,
                ncols=size.columns if tty else 100, nrows=size.lines, ascii=not tty)


class _LogLines:
    """A file for tqdm that turns its carriage-return redraws into separate log lines."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self._stream.write(f"{line}\n")

    def flush(self) -> None:
        self._stream.flush()


def _summary(stats: Stats, labels: list[str], rejects_path: Path | None) -> str:
    lines = [f"records: {stats.read:,} read, {stats.classified:,} classified, {stats.rejected:,} rejected, "
             f"{stats.written:,} written"]
    if rejects_path is not None and stats.rejected:
        lines[0] += f" (rejects in {rejects_path})"
    width = max(len(label) for label in labels)
    most = max(stats.top_labels.values(), default=0) or 1
    lines.append("top label:")
    for label in labels:
        count = stats.top_labels.get(label, 0)
        share = count / stats.classified if stats.classified else 0.0
        lines.append(f"  {label:<{width}} {count:>9,} {share:6.1%} {'#' * round(30 * count / most)}")
    lines.append("top score:")
    peak = max(stats.histogram) or 1
    for i, count in enumerate(stats.histogram):
        lines.append(f"  {i / BINS:.1f}-{(i + 1) / BINS:.1f} {count:>9,} {'#' * round(30 * count / peak)}")
    return "\n".join(lines)


def _require_matplotlib() -> None:
    """Fail before hours of classification, not after."""
    if importlib.util.find_spec("matplotlib") is None:
        raise InvalidInputError(
            "--report needs matplotlib: pip install 'zsl-onnx[report]' (or pip install matplotlib)."
        )


def _draw_report(stats: Stats, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.barh(labels[::-1], [stats.top_labels.get(label, 0) for label in labels[::-1]])
    left.set_title(f"Top label ({stats.classified:,} records)")
    left.set_xlabel("records")
    right.bar([i / BINS + 0.05 for i in range(BINS)], stats.histogram, width=0.09)
    right.set_title("Top score")
    right.set_xlabel("score")
    right.set_ylabel("records")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
