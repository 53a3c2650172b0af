"""zsl-classify against careless users and attackers: a table of tamperings and hostile inputs.

Each row sets up one situation beside a run (a file in the way, a link, a FIFO, a hostile
argument or input) and says how the run must end: its exit status and a phrase of its one-line
message. In every row a user's file holding a secret must survive unchanged, the secret must
never appear in a message, and no traceback may be printed.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from zsl_onnx.classify.cli import main, run_command
from zsl_onnx.classify.plan import MAX_LABELS, STATE_SUFFIX
from zsl_onnx.internals import LOCK_SUFFIX, FileLock, lock_is_stale
from classify_helpers import exe

LABELS = "sports,economy,politics"
TEXTS = [f"Record number {i} about {topic}." for i, topic in enumerate(["football", "markets", "elections"] * 2)]
SECRET = "SECRET-7f3a-do-not-print"
SENTINEL = f"the user's own notes, {SECRET}\n"


@dataclass
class Scene:
    """One run's directory: the corpus, the output name and the user's sentinel file."""

    root: Path
    bundle: Path

    @property
    def input(self) -> Path:
        return self.root / "in.jsonl"

    @property
    def out(self) -> Path:
        return self.root / "out.jsonl"

    @property
    def sentinel(self) -> Path:
        return self.root / "notes.txt"

    def beside(self, suffix: str) -> Path:
        return self.root / ("out.jsonl" + suffix)

    def argv(self, *extra: object, source: object = None) -> list[str]:
        return [str(a) for a in (self.bundle, source or self.input, "-o", self.out, "--labels", LABELS, "-q", *extra)]


@pytest.fixture()
def scene(bert_bundle, tmp_path) -> Scene:
    s = Scene(tmp_path, bert_bundle)
    s.input.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)), encoding="utf-8")
    s.sentinel.write_text(SENTINEL, encoding="utf-8")
    return s


def link_to_sentinel(s: Scene, suffix: str) -> None:
    s.beside(suffix).symlink_to(s.sentinel)


def held_link_at_lock(s: Scene) -> None:
    """The lock name links to the user's file, which another process holds a flock on."""
    link_to_sentinel(s, LOCK_SUFFIX)
    fd = os.open(s.sentinel, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    s.held = fd  # type: ignore[attr-defined]  # closed by the test


def write_parquet(path: Path, columns: dict[str, list], names: list[str] | None = None) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    names = names or list(columns)
    pq.write_table(pa.table([pa.array(v) for v in columns.values()], names=names), path)


def parquet_input(s: Scene, columns: dict[str, list], names: list[str] | None = None) -> Path:
    path = s.root / "in.parquet"
    write_parquet(path, columns, names)
    return path


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Scene], list[str]]  # prepares the scene, returns the command line
    code: int
    message: str  # a phrase of the message (stderr); "" when the run succeeds
    subprocess: bool = False  # rows that could hang or eat memory run in a child with a time limit


CASES = [
    # -- files beside the output: never replaced without --overwrite, never through a link --------
    Case("rejects-names-a-users-file",
         lambda s: s.argv("--skip-invalid", "--rejects", s.sentinel), 1, "exists; pass --overwrite"),
    Case("leftover-default-rejects-file",
         lambda s: (s.beside(".rejects.jsonl").write_text(SENTINEL), s.argv("--skip-invalid"))[1], 1,
         "rejects file"),
    Case("report-names-a-users-file",
         lambda s: s.argv("--report", s.root / "chart.png") if (s.root / "chart.png").write_text(SENTINEL) else [],
         1, "The report"),
    Case("users-file-named-like-the-lock",
         lambda s: (s.beside(LOCK_SUFFIX).write_text(SENTINEL), s.argv())[1], 1, "not a lock of zsl-onnx"),
    Case("lock-name-links-to-a-held-file",
         lambda s: (held_link_at_lock(s), s.argv())[1], 1, "not a lock of zsl-onnx (it is a symbolic link)"),
    Case("lock-name-is-a-fifo",
         lambda s: (os.mkfifo(s.beside(LOCK_SUFFIX)), s.argv())[1], 1, "not a regular file", subprocess=True),
    Case("state-temp-name-links-to-a-users-file",
         lambda s: (link_to_sentinel(s, STATE_SUFFIX + ".tmp"), s.argv())[1], 0, ""),
    Case("output-is-a-fifo-with-overwrite",
         lambda s: (os.mkfifo(s.out), s.argv("--overwrite"))[1], 1, "not a regular file", subprocess=True),
    Case("state-file-is-a-fifo-on-resume",
         lambda s: (s.out.write_text(""), os.mkfifo(s.beside(STATE_SUFFIX)), s.argv("--resume"))[2], 1,
         "not a regular file", subprocess=True),
    Case("rejects-is-the-lock-of-the-output",
         lambda s: s.argv("--skip-invalid", "--rejects", s.beside(LOCK_SUFFIX)), 1, "is the same file as --rejects"),
    # -- unbounded reads -------------------------------------------------------------------------
    Case("labels-file-is-dev-zero",
         lambda s: without_labels(s) + ["--labels-file", "/dev/zero"], 1,
         "not a regular file", subprocess=True),
    Case("labels-file-over-1-mb",
         lambda s: labels_file_argv(s, "x" * 80 + "\n", 20_000), 1, "larger than"),
    Case("too-many-labels",
         lambda s: labels_file_argv(s, None, MAX_LABELS + 1), 1, "more than 10,000"),
    # -- silently wrong --------------------------------------------------------------------------
    Case("parquet-with-a-column-named-twice",
         lambda s: s.argv(source=parquet_input(s, {"a": ["x"], "text": ["hello"], "b": ["y"]}, ["id", "text", "id"])),
         1, "column 'id' twice"),
    # -- tracebacks before ------------------------------------------------------------------------
    Case("non-utf8-input-name",
         lambda s: s.argv(source=str(s.root / "\udcff.jsonl")), 1, "is not valid UTF-8"),
    Case("non-utf8-output-name",
         lambda s: [a if a != str(s.out) else str(s.root / "\udcffout.jsonl") for a in s.argv()], 1, "-o b'"),
    Case("non-utf8-label",
         lambda s: [a if a != LABELS else "sports,\udcff" for a in s.argv()], 1, "--labels b'sports,\\xff'"),
    Case("non-utf8-text-field",
         lambda s: s.argv("--text-field", "t\udcff"), 1, "--text-field b't\\xff'"),
    Case("report-format-matplotlib-cannot-write",
         lambda s: s.argv("--report", s.root / "report.xyz"), 1, "no image format matplotlib can write"),
    Case("threads-beyond-4-per-core",
         lambda s: s.argv("--threads", 100_000), 1, "--threads must be an integer"),
]


def without_labels(s: Scene) -> list[str]:
    return [a for a in s.argv() if a not in ("--labels", LABELS)]


def labels_file_argv(s: Scene, line: str | None, count: int) -> list[str]:
    path = s.root / "labels.txt"
    path.write_text("".join(line or f"label {i}\n" for i in range(count)), encoding="utf-8")
    return without_labels(s) + ["--labels-file", str(path)]


def run_cli(argv: list[str], in_child: bool, capsys) -> tuple[int, str, float]:
    start = time.monotonic()
    if in_child:
        done = subprocess.run([exe(), *argv], capture_output=True, text=True, timeout=60,
                              errors="backslashreplace")
        return done.returncode, done.stderr, time.monotonic() - start
    code = main(argv)
    return code, capsys.readouterr().err, time.monotonic() - start


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_situations_beside_a_run(scene, capsys, case):
    argv = case.setup(scene)
    code, err, seconds = run_cli(argv, case.subprocess, capsys)
    if hasattr(scene, "held"):
        os.close(scene.held)
    assert code == case.code, err
    assert case.message in err
    assert "Traceback" not in err and SECRET not in err
    if case.code:
        assert len(err.strip().splitlines()) == 1 and err.startswith("zsl-classify: error: ")
    assert scene.sentinel.read_text(encoding="utf-8") == SENTINEL  # the user's file survives, unchanged
    assert seconds < 30
    leftovers = [p.name for p in scene.root.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]
    assert leftovers == []


def test_a_refused_argument_writes_nothing(scene, capsys):
    before = sorted(p.name for p in scene.root.iterdir())
    for extra in (["--labels", "a,\udcff"], ["--report", str(scene.root / "r.xyz")], ["--threads", "0"]):
        assert main(without_labels(scene) + (extra if extra[0] == "--labels" else ["--labels", LABELS, *extra])) == 1
        assert sorted(p.name for p in scene.root.iterdir()) == before


def test_our_own_stale_lock_is_taken_over_and_a_strangers_file_never(scene, tmp_path):
    lock = scene.beside(LOCK_SUFFIX)
    with FileLock(scene.out):
        content = lock.read_text()
        assert content.startswith("zsl-onnx lock: pid ") and not lock_is_stale(lock)
    lock.write_text(content)  # left by a killed run: ours, and nobody holds its flock
    assert lock_is_stale(lock)
    assert main(scene.argv()) == 0 and not lock.exists()
    for stranger in (SENTINEL, "", "pid 12 on host\nmore\n"):
        lock.write_text(stranger)
        assert not lock_is_stale(lock)
        assert main(scene.argv("--overwrite")) == 1
        assert lock.read_text() == stranger


# -- unbounded reads: time and memory far below the unbounded figures ----------------------------


@pytest.mark.parametrize(("name", "data", "extra"), [
    ("8-mb-text-without-newlines", b"word " * ((8 << 20) // 5), []),
    ("8-mb-jsonl-without-newlines", b"x" * (8 << 20), ["--skip-invalid"]),
    ("8-mb-line-ending-in-a-lone-carriage-return", b"word " * ((8 << 20) // 5) + b"\r", []),
])
def test_long_lines_are_read_in_linear_time_and_bounded_memory(scene, name, data, extra):
    source = scene.root / ("in.jsonl" if "jsonl" in name else "in.txt")
    source.write_bytes(data)
    start = time.monotonic()
    done = subprocess.run([exe(), *scene.argv(*extra, source=source)], capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    assert "Traceback" not in done.stderr
    assert seconds < 10, f"{name} took {seconds:.1f} s"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2 << 20  # kB: under 2 GB


def test_a_line_of_32_mb_is_split_in_linear_time():
    import io

    from zsl_onnx.classify.readers import byte_lines

    start = time.monotonic()
    lines = list(byte_lines(io.BytesIO(b"x" * (32 << 20) + b"\r")))
    assert len(lines) == 1 and len(lines[0]) == (32 << 20) + 1
    assert time.monotonic() - start < 10  # a re-scanning splitter takes minutes


def test_an_endless_line_stops_the_run_with_bounded_memory(scene):
    start = time.monotonic()
    done = subprocess.run([exe(), *scene.argv("--input-format", "txt", source="/dev/zero")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "/dev/zero: line 1 is longer than 128 MiB" in done.stderr
    assert "Traceback" not in done.stderr and time.monotonic() - start < 30
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2 << 20  # kB: under 2 GB


def test_labels_file_dev_zero_is_refused_quickly(scene):
    start = time.monotonic()
    argv = [a for a in scene.argv() if a not in ("--labels", LABELS)] + ["--labels-file", "/dev/zero"]
    done = subprocess.run([exe(), *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--labels-file /dev/zero is not a regular file" in done.stderr
    assert time.monotonic() - start < 5 + 10  # the refusal itself is instant; the rest is Python's start


# -- silently wrong before ---------------------------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"])
def test_labels_file_splits_only_on_line_ends(scene, separator):
    labels = scene.root / "labels.txt"
    labels.write_text(f"\ufeffa{separator}b\r\nc\rd\n", encoding="utf-8")
    argv = [a for a in scene.argv() if a not in ("--labels", LABELS)] + ["--labels-file", str(labels)]
    assert main(argv) == 0
    row = json.loads(scene.out.read_text(encoding="utf-8").split("\n")[0])  # not splitlines: U+2028
    assert sorted(row["labels"]) == sorted([f"a{separator}b", "c", "d"])


@pytest.mark.parametrize("fmt", ["jsonl", "txt", "csv"])
def test_texts_of_invisible_characters_are_bad_records(scene, fmt):
    source = scene.root / f"zw.{fmt}"
    invisible = "\u200b\u200d\u2060"
    source.write_text({"jsonl": json.dumps({"text": invisible}) + '\n{"text": "real text"}\n',
                       "txt": f"{invisible}\nreal text\n", "csv": f"text\n{invisible}\nreal text\n"}[fmt],
                      encoding="utf-8")
    assert main(scene.argv("--skip-invalid", source=source)) == 0
    rejects = [json.loads(line) for line in scene.beside(".rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [1 if fmt != "csv" else 2]
    assert "empty or only whitespace or invisible characters" in rejects[0]["reason"]


def test_nan_in_a_parquet_column_is_a_bad_record(scene):
    source = parquet_input(scene, {"text": ["first", "second"], "v": [float("nan"), 1.5]})
    assert main(scene.argv("--skip-invalid", source=source)) == 0
    rows = [json.loads(line) for line in scene.out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["second"]
    reject = json.loads(scene.beside(".rejects.jsonl").read_text())
    assert reject["line"] == 1 and "NaN or infinity" in reject["reason"]


# -- resume: the state must agree with the output it describes -----------------------------------


class Crash(BaseException):
    """A kill: not an Exception, so nothing in the command handles it."""


def interrupted(scene: Scene, *extra: str) -> dict:
    def fault(point, index):
        if (point, index) == ("checkpointed", 0):
            raise Crash

    with pytest.raises(Crash):
        run_command(scene.argv("--flush-every", 3, *extra), fault=fault)
    return json.loads(scene.beside(STATE_SUFFIX).read_text())


def _set(path: list[str], value):
    def tamper(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return tamper


STATE_TAMPERINGS = [
    ("stats-not-an-object", _set(["stats"], []), "corrupt"),
    ("stats-missing-a-count", lambda st: st["stats"].pop("classified"), "record counts are missing"),
    ("stats-count-a-string", _set(["stats", "read"], "3"), "record counts are missing"),
    ("stats-histogram-short", _set(["stats", "histogram"], [3]), "histogram is malformed"),
    ("records-fewer-than-read", lambda st: st.update(records=2), "consumed but 3 read"),
    ("stats-written-more-than-output", lambda st: [st["stats"].update(
        read=4, classified=4, written=4, histogram=[4 if c else 0 for c in st["stats"]["histogram"]],
        top_labels={k: 4 if i == 0 else 0 for i, k in enumerate(st["stats"]["top_labels"])}), st.update(records=4)],
     "records written"),
    ("stats-top-labels-do-not-add-up", _set(["stats", "top_labels"], {"sports": 1}), "top-label counts"),
    ("stats-unknown-top-label", lambda st: st["stats"].update(
        top_labels={"SECRET-7f3a-do-not-print": st["stats"]["classified"]}), "not among the labels"),
    ("columns-for-a-jsonl-output", _set(["columns"], ["id", "text"]), "CSV columns"),
    ("records-beyond-the-output", lambda st: st.update(records=6), "consumed but 3 read"),
]


@pytest.mark.parametrize(("name", "tamper", "message"), STATE_TAMPERINGS, ids=[t[0] for t in STATE_TAMPERINGS])
def test_a_hand_edited_state_is_refused_naming_the_inconsistency(scene, capsys, name, tamper, message):
    state = interrupted(scene)
    output = scene.out.read_bytes()
    tamper(state)
    scene.beside(STATE_SUFFIX).write_text(json.dumps(state))
    assert main(scene.argv("--flush-every", 3, "--resume")) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and SECRET not in err and len(err.strip().splitlines()) == 1
    assert scene.out.read_bytes() == output


def test_csv_state_is_checked_against_the_header_and_rows(scene, capsys):
    scene_out = scene.root / "out.csv"
    argv = [a if a != str(scene.out) else str(scene_out) for a in scene.argv("--flush-every", 3)]

    def fault(point, index):
        if (point, index) == ("checkpointed", 0):
            raise Crash

    with pytest.raises(Crash):
        run_command(argv, fault=fault)
    state_path = Path(str(scene_out) + STATE_SUFFIX)
    state = json.loads(state_path.read_text())
    good = json.dumps(state)
    state["columns"] = list(reversed(state["columns"]))
    state_path.write_text(json.dumps(state))
    assert main([*argv, "--resume"]) == 1 and "not the header" in capsys.readouterr().err
    state_path.write_text(good)
    assert main([*argv, "--resume"]) == 0
    assert len(scene_out.read_text().splitlines()) == 1 + len(TEXTS)
