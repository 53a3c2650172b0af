"""`zsl-classify`: pre-annotate a corpus from the command line, streaming and resumable.

Records are read, classified and written in chunks (``--flush-every``). After each chunk the
output and rejects files are flushed and fsynced, then a small state file next to the output
records how many input records and output bytes are complete. ``--resume`` truncates the
output back to that point (dropping anything a crash left half-written) and skips the
records already done, so the result is byte for byte what an uninterrupted run writes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._classifier import DEFAULT_BATCH_SIZE, ZeroShotClassifier
from ._corpus import (
    FORMATS,
    Invalid,
    Record,
    argilla_record,
    classified_fields,
    csv_header,
    format_from_name,
    read_records,
    render,
)
from ._exceptions import InvalidInputError, ZslOnnxError
from ._hypotheses import DEFAULT_TEMPLATE, parse_labels

STATE_SUFFIX = ".zsl-state.json"
BINS = 10
LOG_EVERY_S = 10.0  # progress lines when stderr is not a terminal
SCORE_DIGITS = 6


class InvalidRecordError(InvalidInputError):
    """An input record cannot be classified (and --skip-invalid was not given)."""


@dataclass
class Stats:
    read: int = 0
    classified: int = 0
    rejected: int = 0
    written: int = 0
    top_labels: Counter[str] = field(default_factory=Counter)
    histogram: list[int] = field(default_factory=lambda: [0] * BINS)

    def to_json(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in ("read", "classified", "rejected", "written")},
                "top_labels": dict(self.top_labels), "histogram": self.histogram}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        return cls(data["read"], data["classified"], data["rejected"], data["written"],
                   Counter(data["top_labels"]), list(data["histogram"]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zsl-classify",
        description="Classify every record of a JSONL, CSV, TSV or text file with a zero-shot model.",
    )
    parser.add_argument("model", help="bundle directory made by zsl-export, or a Hub repo id")
    parser.add_argument("input", help="input file, or - for stdin (then --input-format is required)")
    parser.add_argument("-o", "--output", required=True, help="output file, or - for stdout")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help='comma-separated candidate labels, e.g. "politics,sports,economy"')
    labels.add_argument("--labels-file", help="file with one candidate label a line")
    parser.add_argument("--input-format", choices=FORMATS, help="default: from the input's extension")
    parser.add_argument("--format", dest="output_format", choices=("jsonl", "csv", "argilla"),
                        help="output format (default: csv for a .csv output, else jsonl)")
    parser.add_argument("--text-field", action="append", dest="text_fields",
                        help="field holding the text (default: text); repeat to join several, e.g. title and body")
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
    parser.add_argument("--rejects", help="rejects file (JSONL; default: OUTPUT.rejects.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run with the same arguments")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--report", help="also draw the label distribution and score histogram to this PNG (needs matplotlib)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ZslOnnxError as exc:
        print(f"zsl-classify: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nzsl-classify: interrupted; completed chunks are saved, rerun with --resume to continue",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    labels = _labels(args)
    text_fields = args.text_fields or ["text"]
    input_format = args.input_format or (None if args.input == "-" else format_from_name(args.input))
    if input_format is None:
        raise InvalidInputError(
            f"Cannot tell the format of {'stdin' if args.input == '-' else args.input}; "
            f"pass --input-format ({', '.join(FORMATS)})."
        )
    to_stdout = args.output == "-"
    output_format = args.output_format or ("csv" if args.output.lower().endswith(".csv") else "jsonl")
    if args.only_above and args.threshold is None:
        raise InvalidInputError("--only-above needs --threshold.")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InvalidInputError(f"--threshold must be between 0 and 1, not {args.threshold}.")
    if args.flush_every < 1:
        raise InvalidInputError("--flush-every must be at least 1.")
    if args.resume and (to_stdout or args.input == "-"):
        raise InvalidInputError("--resume needs an input file and an output file, not stdin/stdout.")
    if args.report:
        _require_matplotlib()
    rejects_path = Path(args.rejects) if args.rejects else (None if to_stdout else Path(args.output + ".rejects.jsonl"))
    if args.skip_invalid and rejects_path is None:
        raise InvalidInputError("With output to stdout, --skip-invalid needs --rejects FILE.")

    clf = ZeroShotClassifier.from_pretrained(
        args.model, variant=args.variant, threads=args.threads, max_length=args.max_length
    )
    template = args.template or clf.hypothesis_template
    fingerprint = _fingerprint(args, labels, text_fields, input_format, output_format, template)

    out_path = None if to_stdout else Path(args.output)
    state_path = None if out_path is None else Path(args.output + STATE_SUFFIX)
    state = _prepare_output(out_path, state_path, rejects_path, fingerprint, args)
    stats = Stats.from_json(state["stats"]) if state else Stats()
    skip = state["records_done"] if state else 0
    columns: list[str] | None = state["columns"] if state else None

    out: IO[str] = sys.stdout if out_path is None else out_path.open("a", encoding="utf-8", newline="")
    rejects: IO[str] | None = None
    if rejects_path is not None and args.skip_invalid:
        rejects = rejects_path.open("a", encoding="utf-8", newline="")
    source: IO[bytes] = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115
    progress = _Progress(None if args.input == "-" else os.path.getsize(args.input), args.quiet)
    agent = f"zsl-onnx:{Path(str(args.model)).name}:{clf.variant}"
    done = skip
    try:
        items = read_records(source, input_format, text_fields, separator=" ")
        for _ in range(skip):
            next(items, None)
        for chunk in _chunks(items, args.flush_every):
            stop: Invalid | None = None
            if not args.skip_invalid:
                stop = next((item for item in chunk if isinstance(item, Invalid)), None)
                if stop is not None:  # classify and keep what came before the bad record
                    chunk = chunk[: chunk.index(stop)]
            valid = [item for item in chunk if isinstance(item, Record)]
            results = clf(
                [r.text for r in valid], labels, hypothesis_template=template,
                multi_label=args.multi_label, batch_size=args.batch_size,
            ) if valid else []
            rows: list[dict[str, Any]] = []
            for record, result in zip(valid, results):
                # Round once, here: the threshold then agrees with the top_score that is written.
                result = {"labels": result["labels"], "scores": [round(float(x), SCORE_DIGITS) for x in result["scores"]]}
                top = result["scores"][0]
                stats.classified += 1
                stats.top_labels[result["labels"][0]] += 1
                stats.histogram[min(int(top * BINS), BINS - 1)] += 1
                if args.only_above and top < args.threshold:
                    continue
                if output_format == "argilla":
                    rows.append(argilla_record(record, text_fields, result["labels"], result["scores"], agent, args.multi_label))
                else:
                    rows.append(classified_fields(record.fields, result["labels"], result["scores"], args.threshold))
            text = ""
            if output_format == "csv" and rows and columns is None:
                columns = list(rows[0])
                text = csv_header(columns)
            if output_format == "csv":
                rows = [_fit_columns(row, columns, args.input) for row in rows]
            text += render(rows, output_format, columns)
            bad = [item for item in chunk if isinstance(item, Invalid)]
            stats.read += len(chunk)
            stats.written += len(rows)
            stats.rejected += len(bad)
            out.write(text)
            if rejects is not None and bad:
                rejects.write("".join(
                    json.dumps({"line": b.line, "reason": b.reason, "raw": b.raw}, ensure_ascii=False) + "\n" for b in bad
                ))
            done += len(chunk)
            _checkpoint(out, rejects, state_path, fingerprint, done, columns, stats)
            progress.update(stats.read, source)
            if stop is not None:
                stats.read += 1
                raise InvalidRecordError(
                    f"{args.input}:{stop.line}: {stop.reason}. Fix the record, or pass --skip-invalid to "
                    f"send such records to {rejects_path or 'a rejects file'}; the {stats.written} records "
                    "before it are written (--resume continues after them)."
                )
    finally:
        progress.close()
        if source is not sys.stdin.buffer:
            source.close()
        if rejects is not None:
            rejects.close()
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    if state_path is not None:
        state_path.unlink(missing_ok=True)  # complete: no state file means nothing to resume
    if not args.quiet:
        print(_summary(stats, labels, rejects_path if args.skip_invalid else None), file=sys.stderr)
    if args.report:
        _draw_report(stats, labels, Path(args.report))
    return 0


def _labels(args: argparse.Namespace) -> list[str]:
    if args.labels_file:
        try:
            lines = Path(args.labels_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"Cannot read --labels-file {args.labels_file}: {exc}") from exc
        return parse_labels([line.strip() for line in lines if line.strip()])
    return parse_labels(args.labels)


def _fingerprint(args: argparse.Namespace, labels: list[str], text_fields: list[str], input_format: str,
                 output_format: str, template: str) -> str:
    """What must not change between a run and its --resume (else the output would be mixed)."""
    data = [str(args.model), args.variant, os.path.abspath(args.input), input_format, output_format, text_fields,
            labels, template, args.multi_label, args.threshold, args.only_above, args.max_length, args.skip_invalid]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def _prepare_output(out_path: Path | None, state_path: Path | None, rejects_path: Path | None,
                    fingerprint: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """Fresh start (truncate) or resume (cut back to the last checkpoint); returns the state."""
    if out_path is None or state_path is None:
        return None
    if args.resume:
        if not state_path.is_file():
            raise InvalidInputError(
                f"Nothing to resume: {state_path} does not exist (the run finished, or never started)."
            )
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state["fingerprint"] != fingerprint:
            raise InvalidInputError(
                "--resume needs the same model, input, labels, template and output options as the "
                "interrupted run; these differ. Start again with --overwrite."
            )
        with out_path.open("r+b") as handle:
            handle.truncate(state["output_bytes"])
        if rejects_path is not None and rejects_path.exists():
            with rejects_path.open("r+b") as handle:
                handle.truncate(state["rejects_bytes"])
        return state
    if state_path.exists() and not args.overwrite:
        raise InvalidInputError(
            f"{out_path} is from an interrupted run; pass --resume to continue it or --overwrite to start again."
        )
    if out_path.exists() and not args.overwrite:
        raise InvalidInputError(f"{out_path} exists; pass --overwrite to replace it.")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(b"")
    if rejects_path is not None and args.skip_invalid:
        rejects_path.write_bytes(b"")
    return None


def _checkpoint(out: IO[str], rejects: IO[str] | None, state_path: Path | None, fingerprint: str,
                done: int, columns: list[str] | None, stats: Stats) -> None:
    out.flush()
    if state_path is None:
        return
    os.fsync(out.fileno())
    rejects_bytes = 0
    if rejects is not None:
        rejects.flush()
        os.fsync(rejects.fileno())
        rejects_bytes = rejects.tell()
    state = {"fingerprint": fingerprint, "records_done": done, "output_bytes": out.tell(),
             "rejects_bytes": rejects_bytes, "columns": columns, "stats": stats.to_json()}
    tmp = state_path.with_name(state_path.name + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, state_path)  # atomic: the state always matches a completed chunk


def _chunks(items: Iterator[Record | Invalid], size: int) -> Iterator[list[Record | Invalid]]:
    chunk: list[Record | Invalid] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fit_columns(row: dict[str, Any], columns: list[str] | None, source: str) -> dict[str, Any]:
    assert columns is not None
    extra = [key for key in row if key not in columns]
    if extra:
        raise InvalidRecordError(
            f"{source}: a record has fields {extra} that the first record lacks, so they have no CSV "
            "column; write JSONL (-o out.jsonl) to keep records with varying fields."
        )
    return row


class _Progress:
    """A one-line bar on a terminal; a log line every 10 s otherwise; nothing with --quiet."""

    def __init__(self, total_bytes: int | None, quiet: bool) -> None:
        self._total = total_bytes
        self._enabled = not quiet
        self._tty = sys.stderr.isatty()
        self._start = time.monotonic()
        self._last_log = self._start
        self._drawn = False

    def update(self, records: int, source: IO[bytes]) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        rate = records / max(now - self._start, 1e-9)
        line = f"{records:,} records  {rate:,.1f} records/s"
        if self._total:
            fraction = min(_position(source) / self._total, 1.0)
            eta = (now - self._start) * (1 - fraction) / fraction if fraction > 0 else 0.0
            bar = "#" * int(fraction * 30)
            line = f"[{bar:<30}] {fraction:6.1%}  {line}  ETA {_clock(eta)}"
        if self._tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
            self._drawn = True
        elif now - self._last_log >= LOG_EVERY_S:
            print(f"zsl-classify: {line}", file=sys.stderr, flush=True)
            self._last_log = now

    def close(self) -> None:
        if self._drawn:
            print(file=sys.stderr)


def _position(source: IO[bytes]) -> int:
    try:
        return source.tell()
    except OSError:
        return 0


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
