"""zsl-classify never loses, duplicates or mixes data: same-file refusals, one writer per output,
checked --resume, crash at every checkpoint boundary, exit status and reject limits, odd input."""

import codecs
import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from zsl_onnx import ZeroShotClassifier
from zsl_onnx.classify.checkpoint import Appender
from zsl_onnx.classify.cli import build_parser, run_command
from zsl_onnx.internals import LOCK_SUFFIX, FileLock
from zsl_onnx.classify.plan import STATE_SUFFIX
from classify_helpers import Crash, classify, read_jsonl, write_jsonl

LABELS = "sports,economy,politics"
TEXTS = [f"Record number {i} about {topic}." for i, topic in enumerate(["football", "markets", "elections"] * 4)]


@pytest.fixture()
def corpus(tmp_path):
    source = tmp_path / "in.jsonl"
    write_jsonl(source, [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    return source


@pytest.fixture()
def whole(bert_bundle, corpus, tmp_path):
    """The output of an uninterrupted run (flush every 3 records)."""
    out = tmp_path / "whole.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q") == 0
    return out.read_bytes()


# -- same file, one writer --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "rejects", "report", "labels-file"])
def test_no_output_may_be_an_input(bert_bundle, corpus, tmp_path, capsys, how):
    before = corpus.read_bytes()
    args = [bert_bundle, corpus, "--labels", LABELS, "--overwrite", "-q"]
    if how == "same path":
        args += ["-o", corpus]
    elif how == "symlink":
        (tmp_path / "link.jsonl").symlink_to(corpus)
        args += ["-o", tmp_path / "link.jsonl"]
    elif how == "hard link":
        os.link(corpus, tmp_path / "hard.jsonl")
        args += ["-o", tmp_path / "hard.jsonl"]
    elif how == "rejects":
        args += ["-o", tmp_path / "out.jsonl", "--skip-invalid", "--rejects", corpus]
    elif how == "report":
        args += ["-o", tmp_path / "out.jsonl", "--report", corpus]
    else:
        labels = tmp_path / "labels.list"
        labels.write_text("a\nb\n")
        args = [bert_bundle, corpus, "--labels-file", labels, "-o", labels, "--overwrite"]
    assert classify(*args) == 1
    assert "is the same file as" in capsys.readouterr().err
    assert corpus.read_bytes() == before


def test_rejects_may_not_be_the_output(bert_bundle, corpus, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--skip-invalid", "--rejects", out) == 1
    assert "same file" in capsys.readouterr().err and not out.exists()


def test_a_second_writer_is_refused_while_the_first_holds_the_output(bert_bundle, corpus, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("being written\n")
    with FileLock(out):  # another run, as far as the lock can tell (a separate open file)
        assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--overwrite", "-q") == 1
        assert "being written by another run" in capsys.readouterr().err
        assert out.read_text() == "being written\n"
    assert not Path(str(out) + LOCK_SUFFIX).exists()
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--overwrite", "-q") == 0
    assert not Path(str(out) + LOCK_SUFFIX).exists()  # removed on exit


def test_a_lock_left_by_a_killed_run_is_stale(bert_bundle, corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    Path(str(out) + LOCK_SUFFIX).write_text("pid 999999 on elsewhere\n")  # nobody holds its flock
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "-q") == 0
    assert len(read_jsonl(out)) == len(TEXTS) and not Path(str(out) + LOCK_SUFFIX).exists()


# -- resume: checked before appending -----------------------------------------------------------


def interrupted(bert_bundle, corpus, out, *extra, at=("checkpointed", 1)):
    """Run until the given checkpoint boundary, then crash."""

    def fault(point, index):
        if (point, index) == at:
            raise Crash

    argv = [str(a) for a in (bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q", *extra)]
    with pytest.raises(Crash):
        run_command(argv, fault=fault)


@pytest.mark.parametrize("point", ["written", "checkpointed"])
@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_crash_at_every_checkpoint_boundary_then_resume_gives_the_uninterrupted_file(
    bert_bundle, corpus, tmp_path, monkeypatch, whole, point, index
):
    out = tmp_path / "out.jsonl"
    interrupted(bert_bundle, corpus, out, at=(point, index))
    state = json.loads(Path(str(out) + STATE_SUFFIX).read_text())
    assert state["records"] == 3 * (index + (point == "checkpointed"))
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q", "--resume") == 0
    assert out.read_bytes() == whole
    assert not Path(str(out) + STATE_SUFFIX).exists()


@pytest.mark.parametrize("index", [0, 2])
def test_ctrl_c_message_agrees_with_what_resume_does(bert_bundle, corpus, tmp_path, monkeypatch, capsys, whole, index):
    out = tmp_path / "out.jsonl"

    def fault(point, i):
        if (point, i) == ("written", index):
            raise KeyboardInterrupt

    argv = [str(a) for a in (bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q")]
    assert run_command(argv, fault=fault) == 130
    saved = 3 * index
    assert f"{saved} records are saved in {out}" in capsys.readouterr().err
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q", "--resume") == 0
    assert out.read_bytes() == whole


def test_ctrl_c_before_any_output_says_so_and_a_plain_rerun_works(bert_bundle, corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.jsonl"

    def slow_load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ZeroShotClassifier, "from_pretrained", slow_load)
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS) == 130
    assert "no output was written" in capsys.readouterr().err and not out.exists()
    monkeypatch.undo()
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "-q") == 0


def test_resume_refuses_an_input_with_a_line_inserted_at_the_top(bert_bundle, corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.jsonl"
    interrupted(bert_bundle, corpus, out)
    before = out.read_bytes()
    corpus.write_text('{"id": -1, "text": "new first record"}\n' + corpus.read_text())
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "--resume") == 1
    err = capsys.readouterr().err
    assert "changed since the run stopped" in err and "first 6 records" in err
    assert out.read_bytes() == before  # nothing appended, nothing cut


@pytest.mark.parametrize("damage", ["truncated", "edited", "grown"])
def test_resume_checks_the_output_up_to_the_checkpoint(bert_bundle, corpus, tmp_path, monkeypatch, capsys, whole, damage):
    out = tmp_path / "out.jsonl"
    interrupted(bert_bundle, corpus, out)
    data = out.read_bytes()
    if damage == "truncated":
        out.write_bytes(data[: len(data) // 2])
    elif damage == "edited":
        out.write_bytes(data.replace(b'"id": 1,', b'"id": 7,'))
    else:  # a half-written chunk after the checkpoint: legitimate, cut off on resume
        out.write_bytes(data + b'{"id": 99, "text": "half')
    code = classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q", "--resume")
    err = capsys.readouterr().err
    if damage == "grown":
        assert code == 0 and out.read_bytes() == whole
    else:
        assert code == 1 and ("fewer than" in err if damage == "truncated" else "differ from what" in err)
        assert b"\x00" not in out.read_bytes()


def test_resume_refuses_other_settings_naming_each(bert_bundle, corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.jsonl"
    interrupted(bert_bundle, corpus, out)
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 4, "--batch-size", 7,
                    "--resume") == 1
    err = capsys.readouterr().err
    assert "--flush-every: 3 then, 4 now" in err and "--batch-size: 32 then, 7 now" in err and "--overwrite" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Nothing to resume"),
        ("", "is empty"),
        ("{not json", "not valid JSON"),
        ('{"format": "something-else", "version": 2}', "not a state file"),
        ("[1, 2]", "should hold a JSON object"),
    ],
)
def test_missing_empty_corrupt_or_foreign_state_is_a_clear_error(bert_bundle, corpus, tmp_path, capsys, content, message):
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    if content is not None:
        Path(str(out) + STATE_SUFFIX).write_text(content)
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--resume") == 1
    assert message in capsys.readouterr().err and out.read_text() == "kept\n"


def test_state_file_of_another_output_is_refused(bert_bundle, corpus, tmp_path, monkeypatch, capsys):
    first = tmp_path / "first.jsonl"
    interrupted(bert_bundle, corpus, first)
    second = tmp_path / "second.jsonl"
    second.write_bytes(first.read_bytes())
    Path(str(second) + STATE_SUFFIX).write_bytes(Path(str(first) + STATE_SUFFIX).read_bytes())
    assert classify(bert_bundle, corpus, "-o", second, "--labels", LABELS, "--flush-every", 3, "--resume") == 1
    assert "belongs to another output" in capsys.readouterr().err


def test_resume_checks_the_rejects_file_too(bert_bundle, tmp_path, monkeypatch, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"text": "ok {i}"}}\n{{broken {i}\n' for i in range(6)))
    out = tmp_path / "out.jsonl"
    interrupted(bert_bundle, source, out, "--skip-invalid")
    rejects = Path(str(out) + ".rejects.jsonl")
    rejects.write_text(rejects.read_text().replace("broken", "BROKEN"))
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--flush-every", 3, "--skip-invalid",
                    "--resume") == 1
    assert "rejects file" in capsys.readouterr().err


# -- OS errors ---------------------------------------------------------------------------------


def test_full_disk_is_one_line_and_resume_works_once_fixed(bert_bundle, corpus, tmp_path, monkeypatch, capsys, whole):
    out = tmp_path / "out.jsonl"
    real_write = Appender.write
    calls = []

    def full(self, text):
        calls.append(text)
        if len(calls) == 3:
            real_write(self, text[: len(text) // 2])  # part of the chunk reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, text)

    monkeypatch.setattr(Appender, "write", full)
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q") == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"zsl-classify: error: No space left on device; once that is fixed, 6 records are saved in {out}: "
                   "rerun the same command with --resume to continue from there.")
    monkeypatch.undo()
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q", "--resume") == 0
    assert out.read_bytes() == whole


def test_appender_errors_name_the_path(tmp_path, monkeypatch):
    appender = Appender(tmp_path / "x.jsonl")

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(appender, "_handle", Full())
    with pytest.raises(OSError) as info:
        appender.write("abc")
    assert info.value.filename == str(tmp_path / "x.jsonl")


@pytest.mark.parametrize("case", ["missing input", "input is a directory", "output is a directory"])
def test_os_errors_are_one_line_naming_the_path(bert_bundle, corpus, tmp_path, capsys, case):
    target = tmp_path / "out.jsonl"
    source = corpus
    if case == "missing input":
        source = tmp_path / "nope.jsonl"
    elif case == "input is a directory":
        source = tmp_path / "dir.jsonl"
        source.mkdir()
    else:
        target.mkdir()
    assert classify(bert_bundle, source, "-o", target, "--labels", LABELS, "--overwrite", "-q") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("zsl-classify: error: ") and "Traceback" not in err
    assert str(source if case != "output is a directory" else target) in err


# -- exit status, reject limits, field collisions, NaN ---------------------------------------------


def test_nothing_classified_is_a_failure_naming_the_first_reason(bert_bundle, corpus, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--skip-invalid", "--text-field", "txt") == 1
    err = capsys.readouterr().err
    assert "nothing was classified: all 12 records were rejected" in err and "missing text field 'txt'" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert classify(bert_bundle, empty, "-o", tmp_path / "o2.jsonl", "--labels", LABELS, "-q") == 1
    assert "the input holds no records" in capsys.readouterr().err


@pytest.mark.parametrize(("limit", "stops_after"), [("2", 6), ("40%", 3), ("100%", None)])
def test_max_rejects_stops_the_run_and_says_which_limit(bert_bundle, tmp_path, capsys, limit, stops_after):
    source = tmp_path / "in.jsonl"
    source.write_text("".join('{"text": "fine"}\n{"body": "x"}\n{"body": "y"}\n' for _ in range(3)))
    out = tmp_path / "out.jsonl"
    code = classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--skip-invalid", "--max-rejects", limit,
                    "--flush-every", 3)
    err = capsys.readouterr().err
    if stops_after is None:
        assert code == 0
    else:
        assert code == 1 and "exceed --max-rejects" in err and f"records: {stops_after} read" in err


def test_max_rejects_is_a_count_or_a_percentage(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["m", "i.jsonl", "-o", "o.jsonl", "--labels", "a", "--max-rejects", "lots"])
    assert "count like 50 or a percentage" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["jsonl", "argilla"])
def test_input_fields_named_like_output_fields_are_never_overwritten(bert_bundle, tmp_path, capsys, fmt):
    field = "labels" if fmt == "jsonl" else "line"
    source = tmp_path / "in.jsonl"
    write_jsonl(source, [{"text": "a match", field: "gold"}])
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--format", fmt) == 1
    assert f"field '{field}' that the output would overwrite" in capsys.readouterr().err
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--format", fmt, "--overwrite",
                    "--field-prefix", "zsl_", "-q") == 0
    row = read_jsonl(out)[0]
    if fmt == "jsonl":
        assert row["labels"] == "gold" and sorted(row["zsl_labels"]) == sorted(LABELS.split(","))
    else:
        assert row["metadata"] == {"line": "gold", "zsl_line": 1}


def test_non_finite_scores_stop_the_run_naming_the_record(bert_bundle, corpus, tmp_path, monkeypatch, capsys):
    real_call = ZeroShotClassifier.__call__

    def broken(self, texts, labels, **kwargs):
        results = real_call(self, texts, labels, **kwargs)
        if any("number 4 " in t for t in texts):
            results[texts.index(next(t for t in texts if "number 4 " in t))]["scores"][0] = float("nan")
        return results

    monkeypatch.setattr(ZeroShotClassifier, "__call__", broken)
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q") == 1
    assert f"{corpus}:5: the model returned a non-finite score" in capsys.readouterr().err
    assert [r["id"] for r in read_jsonl(out)] == [0, 1, 2]
    assert b"NaN" not in out.read_bytes()


# -- odd input and output formats ----------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_with_a_bom_are_decoded(bert_bundle, corpus, tmp_path, whole, encoding):
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
           "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}[encoding]
    source = tmp_path / "wide.jsonl"
    source.write_bytes(bom + corpus.read_text(encoding="utf-8").encode(encoding))
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q") == 0
    assert out.read_bytes() == whole


def test_nul_bytes_without_a_bom_are_rejected_not_classified(bert_bundle, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes("plain line\n".encode() + "wide line\n".encode("utf-16-le") + b"\nlast line\n")
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--skip-invalid", "-q") == 0
    assert [r["text"] for r in read_jsonl(out)] == ["plain line", "last line"]
    assert "NUL bytes" in read_jsonl(str(out) + ".rejects.jsonl")[0]["reason"]


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"])
def test_line_endings_cr_crlf_lf(bert_bundle, tmp_path, ending):
    source = tmp_path / "in.csv"
    source.write_bytes(ending.join(["id,text", "1,first text", '2,"a quoted, text"', "3,third"]).encode() + ending.encode())
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "-q") == 0
    assert [(r["id"], r["text"]) for r in read_jsonl(out)] == [("1", "first text"), ("2", "a quoted, text"), ("3", "third")]


def test_duplicate_csv_header_is_refused(bert_bundle, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("id,text,id\n1,hello,2\n")
    assert classify(bert_bundle, source, "-o", tmp_path / "out.jsonl", "--labels", LABELS) == 1
    assert "column 'id' twice (columns 1 and 3)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"text": "deep", "x": ' + "[" * 100 + "]" * 100 + "}", "nested deeper"),
        ('{"text": "deeper", "x": ' + "[" * 100000 + "]" * 100000 + "}", "unusable JSON"),
        ('{"text": "big", "n": ' + "9" * 5000 + "}", "unusable JSON"),
        ('{"text": "inf", "n": 1e999}', "out of range"),
        ('{"text": "nan", "n": NaN}', "not a JSON number"),
        ('{"text": "lone \\ud800 surrogate"}', "unpaired surrogate"),
    ],
)
def test_hostile_json_is_rejected_never_a_crash(bert_bundle, tmp_path, line, reason):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n' + line + "\n")
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--skip-invalid", "-q") == 0
    assert [r["text"] for r in read_jsonl(out)] == ["fine"]
    assert reason in read_jsonl(str(out) + ".rejects.jsonl")[0]["reason"]


def test_tsv_output_is_tsv_and_mismatched_names_are_refused(bert_bundle, corpus, tmp_path, capsys):
    out = tmp_path / "out.tsv"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "-q") == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["text"] for r in rows] == TEXTS and json.loads(rows[0]["labels"])
    for name, extra in [("x.csv", ["--format", "jsonl"]), ("x.jsonl", ["--format", "tsv"]), ("x.txt", [])]:
        assert classify(bert_bundle, corpus, "-o", tmp_path / name, "--labels", LABELS, *extra) == 1
        assert "zsl-classify: error:" in capsys.readouterr().err and not (tmp_path / name).exists()


@pytest.mark.parametrize("template", ["{{}}", "{:.0}", "{:>300000000}"])
def test_bad_templates_are_refused_before_any_output(bert_bundle, corpus, tmp_path, capsys, template):
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--template", template) == 1
    assert "hypothesis_template" in capsys.readouterr().err and not out.exists()


def test_a_label_that_is_literally_braces_is_fine(bert_bundle, corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", "{},sports", "-q") == 0
    assert set(read_jsonl(out)[0]["labels"]) == {"{}", "sports"}
    assert np.isclose(sum(read_jsonl(out)[0]["scores"]), 1.0, atol=1e-5)


def test_a_read_only_directory_is_one_line_naming_the_output(bert_bundle, corpus, tmp_path, monkeypatch, capsys):
    real_open = os.open
    target = tmp_path / "ro" / "out.jsonl"
    target.parent.mkdir()

    def read_only(path, flags, *args, **kwargs):
        if str(path).startswith(str(target.parent)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert classify(bert_bundle, corpus, "-o", target, "--labels", LABELS, "-q") == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"zsl-classify: error: {target}: Read-only file system; once that is fixed, rerun the command; "
                   "no output was written.")
    assert list(target.parent.iterdir()) == []


def test_two_processes_on_one_output_one_is_refused_and_no_record_is_doubled(bert_bundle, tmp_path):
    import subprocess
    import sys
    import time

    exe = str(Path(sys.executable).parent / "zsl-classify")
    source = tmp_path / "in.jsonl"
    os.mkfifo(source)  # the first run holds its lock while it waits for input
    out = tmp_path / "out.jsonl"
    lock = Path(str(out) + LOCK_SUFFIX)
    common = [str(bert_bundle), str(source), "-o", str(out), "--labels", LABELS, "--overwrite", "-q"]
    first = subprocess.Popen([exe, *common], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), first.stderr.read() if first.poll() is not None else "first run never took the lock"
    second = subprocess.run([exe, *common, "--input-format", "jsonl"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and "being written by another run" in second.stderr
    with source.open("w") as pipe:
        pipe.writelines(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS))
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert [r["id"] for r in read_jsonl(out)] == list(range(len(TEXTS))) and not lock.exists()


def test_a_failing_read_is_one_line_naming_the_input(tmp_path):
    from zsl_onnx.classify.checkpoint import LineTracker

    def broken():
        yield b"first line\n"
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    tracker = LineTracker(broken(), "corpus.jsonl")
    assert next(tracker) == b"first line\n"
    with pytest.raises(OSError) as info:
        next(tracker)
    assert info.value.filename == "corpus.jsonl" and info.value.errno == errno.EIO
