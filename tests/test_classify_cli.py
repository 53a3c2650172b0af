"""zsl-classify end to end: formats, stdin/stdout, rejects, resume after a kill, round trips."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from zsl_onnx import ZeroShotClassifier
from zsl_onnx.classify.plan import STATE_SUFFIX
from classify_helpers import classify, exe, read_jsonl, write_jsonl

LABELS = "sports,economy,politics"
TRICKY = [
    'Café "Le Zèbre", a, b',  # quotes and commas
    "Emoji 😀🚆 and a second line\nhere",
    "مرحبا بالعالم، هذا نص عربي",  # right-to-left
    "שלום עולם",
    "naïve façade — déjà vu",
]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_jsonl_in_jsonl_out_matches_the_python_api(bert_bundle, tmp_path, capsys, variant):
    records = [{"id": i, "text": t, "extra": {"k": i}} for i, t in enumerate(TRICKY)]
    write_jsonl(tmp_path / "in.jsonl", records)
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--labels", LABELS,
                    "--flush-every", 2, "--variant", variant) == 0
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [{k: r[k] for k in ("id", "text", "extra")} for r in rows] == records  # every field kept, Unicode intact
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant=variant)
    texts = [r["text"] for r in records]
    # Same chunks as --flush-every 2: dynamic int8 quantizes activations per batch, so its
    # scores depend (slightly) on which texts share a batch; fp32 does not.
    expected = [result for i in range(0, 5, 2) for result in clf(texts[i : i + 2], LABELS.split(","))]
    for row, exp in zip(rows, expected):
        assert row["labels"] == exp["labels"] and row["top_label"] == exp["labels"][0]
        np.testing.assert_allclose(row["scores"], exp["scores"], atol=1e-6)
        assert row["top_score"] == row["scores"][0]
    err = capsys.readouterr().err
    assert "records: 5 read, 5 classified, 0 rejected, 5 written" in err and "top score:" in err
    shown = {line.split()[0]: int(line.split()[1]) for line in err.split("top label:\n")[1].split("top score:")[0].splitlines()}
    assert shown == {label: sum(r["top_label"] == label for r in rows) for label in LABELS.split(",")}
    histogram = [int(line.split()[1]) for line in err.split("top score:\n")[1].splitlines()[:10]]
    assert histogram == [sum(min(int(r["top_score"] * 10), 9) == i for r in rows) for i in range(10)]
    assert not (tmp_path / ("out.jsonl" + STATE_SUFFIX)).exists()


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_delimited_input_and_csv_output_round_trip(bert_bundle, tmp_path, fmt):
    source = tmp_path / f"in.{fmt}"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="," if fmt == "csv" else "\t")
        writer.writerow(["id", "title", "body"])
        for i, text in enumerate(TRICKY):
            writer.writerow([i, f"Title {i}", text])
    out = tmp_path / "out.csv"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--text-field", "title", "--text-field", "body", "-q") == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["body"] for r in rows] == TRICKY and [r["title"] for r in rows] == [f"Title {i}" for i in range(5)]
    assert list(rows[0]) == ["id", "title", "body", "labels", "scores", "top_label", "top_score"]
    clf = ZeroShotClassifier.from_pretrained(bert_bundle)
    expected = clf([f"Title {i} {t}" for i, t in enumerate(TRICKY)], LABELS.split(","))
    assert [json.loads(r["labels"]) for r in rows] == [e["labels"] for e in expected]
    np.testing.assert_allclose([json.loads(r["scores"]) for r in rows], [e["scores"] for e in expected], atol=1e-6)


def test_text_from_stdin_to_stdout_in_argilla_v1_shape(bert_bundle):
    done = subprocess.run(
        [exe(), str(bert_bundle), "-", "-o", "-", "--input-format", "txt", "--labels", LABELS, "--format", "argilla-v1"],
        input="\n".join(TRICKY[:1] + TRICKY[2:]) + "\n\n", capture_output=True, text=True, encoding="utf-8", timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in rows] == TRICKY[:1] + TRICKY[2:]
    assert [label for label, _ in rows[0]["prediction"]] and len(rows[0]["prediction"]) == 3
    assert rows[0]["metadata"] == {"line": 1} and rows[0]["multi_label"] is False
    assert "records: 4 read" in done.stderr  # summary on stderr, never mixed into stdout


def test_bad_records_stop_the_run_with_file_and_line(bert_bundle, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"text": "fine one"}\n{"text": "fine two"}\n{oops\n{"text": "after"}\n')
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS) == 1
    err = capsys.readouterr().err
    assert f"{source}:3: malformed JSON" in err and "--skip-invalid" in err
    assert [r["text"] for r in read_jsonl(out)] == ["fine one", "fine two"]


def test_skip_invalid_sends_each_bad_record_to_rejects_with_a_reason(bert_bundle, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"text": "ok 1"}\n{oops\n[1, 2]\n{"body": "x"}\n{"text": "   "}\n{"text": 7}\n\xff\xfe broken\n{"text": "ok 2"}\n'
    )
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--skip-invalid") == 0
    assert [r["text"] for r in read_jsonl(out)] == ["ok 1", "ok 2"]
    rejects = read_jsonl(str(out) + ".rejects.jsonl")
    assert [(r["line"], r["reason"].split(" ")[0]) for r in rejects] == [
        (2, "malformed"), (3, "expected"), (4, "missing"), (5, "empty"), (6, "text"), (7, "invalid"),
    ]
    assert "records: 8 read, 2 classified, 6 rejected, 2 written" in capsys.readouterr().err


def test_csv_row_with_wrong_field_count_is_rejected(bert_bundle, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,text\n1,hello there\n2,too,many\n3,bye now\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--skip-invalid", "-q") == 0
    assert [r["id"] for r in read_jsonl(out)] == ["1", "3"]
    assert read_jsonl(str(out) + ".rejects.jsonl")[0]["line"] == 3


def test_threshold_marks_and_only_above_keeps(bert_bundle, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TRICKY])
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "all.jsonl", "--labels", "a,b", "--threshold", "0.5", "-q") == 0
    rows = read_jsonl(tmp_path / "all.jsonl")
    assert all(r["above_threshold"] == (r["top_score"] >= 0.5) for r in rows)
    cut = float(np.median([r["top_score"] for r in rows]))
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "some.jsonl", "--labels", "a,b",
                    "--threshold", cut, "--only-above", "-q") == 0
    kept = read_jsonl(tmp_path / "some.jsonl")
    assert [r["text"] for r in kept] == [r["text"] for r in rows if r["top_score"] >= cut] and 0 < len(kept) < len(rows)


def test_labels_file_multi_label_and_report(bert_bundle, tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "labels.txt").write_text("sports\n\neconomy\npolitics\n", encoding="utf-8")
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TRICKY])
    report = tmp_path / "report.png"
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--labels-file", tmp_path / "labels.txt",
                    "--multi-label", "--report", report, "-q") == 0
    rows = read_jsonl(tmp_path / "out.jsonl")
    expected = ZeroShotClassifier.from_pretrained(bert_bundle)(TRICKY, ["sports", "economy", "politics"], multi_label=True)
    assert [r["labels"] for r in rows] == [e["labels"] for e in expected]
    np.testing.assert_allclose([r["scores"] for r in rows], [e["scores"] for e in expected], atol=1e-6)
    assert abs(sum(rows[0]["scores"]) - 1.0) > 1e-3  # independent per-label scores, not a softmax
    assert report.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_output_and_mismatched_resume_are_refused(bert_bundle, tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TRICKY])
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels", LABELS) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels", LABELS, "--resume") == 1
    assert "Nothing to resume" in capsys.readouterr().err
    assert classify(bert_bundle, "-", "-o", out, "--labels", LABELS) == 1
    assert "--input-format" in capsys.readouterr().err


def test_progress_is_a_bar_on_a_terminal_and_log_lines_otherwise(bert_bundle, tmp_path, capsys, monkeypatch):
    from zsl_onnx.classify import progress

    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TRICKY * 4])
    args = [bert_bundle, tmp_path / "in.jsonl", "--labels", LABELS, "--flush-every", 5, "--overwrite"]
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    assert classify(*args, "-o", tmp_path / "a.jsonl") == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("zsl-classify: ")]
    assert len(lines) >= 2 and "\r" not in err  # log lines, no redraws
    assert "100%" in lines[-1] and "20 records" in lines[-1]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert classify(*args, "-o", tmp_path / "b.jsonl") == 0
    err = capsys.readouterr().err
    assert "\rzsl-classify: 100%" in err and "20 records" in err
    assert classify(*args, "-o", tmp_path / "c.jsonl", "--quiet") == 0
    assert capsys.readouterr().err == ""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_resume_after_interruption_gives_the_uninterrupted_file(bert_bundle, tmp_path, how):
    records = [{"id": i, "text": f"{TRICKY[i % 5]} number {i}"} for i in range(3000)]
    write_jsonl(tmp_path / "all.jsonl", records)
    flags = ["--labels", LABELS, "--flush-every", "40", "--threads", "1", "-q"]
    whole = tmp_path / "whole.jsonl"
    assert subprocess.run([exe(), str(bert_bundle), str(tmp_path / "all.jsonl"), *flags, "-o", str(whole)],
                          timeout=600).returncode == 0

    # The interrupted run reads a pipe that holds back all but the first 600 records, so it is
    # certainly mid-way when the signal comes, however slow or busy the machine is.
    source = tmp_path / "in.jsonl"
    os.mkfifo(source)
    out = tmp_path / "part.jsonl"
    state = Path(str(out) + STATE_SUFFIX)
    command = [exe(), str(bert_bundle), str(source), *flags, "-o", str(out)]
    # A shell that starts the suite in the background ignores SIGINT, and children inherit that;
    # the CLI must see Ctrl-C the way a user's terminal delivers it.
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    release = threading.Event()

    def feed() -> None:
        with source.open("w", encoding="utf-8") as pipe:  # blocks until the CLI opens its input
            pipe.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records[:600])
            pipe.flush()
            release.wait(timeout=600)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["records"] >= 400:
            break
        time.sleep(0.05)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    release.set()
    writer.join(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 130), err
    if how == signal.SIGINT:
        assert "rerun the same command with --resume" in err
    done = json.loads(state.read_text())["records"]
    assert 400 <= done <= 600, "the run was not interrupted where the input was held back"

    source.unlink()  # the same input path, now the whole file, as a rerun after a crash sees it
    write_jsonl(source, records)
    with out.open("a", encoding="utf-8") as handle:
        handle.write('{"id": 99999, "text": "half a rec')  # what a crash mid-write leaves
    assert subprocess.run([*command, "--resume"], timeout=600).returncode == 0
    assert out.read_bytes() == whole.read_bytes()
    assert not state.exists()


@pytest.mark.slow
@pytest.mark.export
def test_fixture_bundle_classifies_a_csv_like_the_api(fixture_bundle, tmp_path):
    texts = ["A man is playing a guitar.", "A dog runs in the park.", "Someone is slicing an onion."]
    source = tmp_path / "in.csv"
    source.write_text("text\n" + "\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    labels = "music,animals,cooking"
    assert classify(fixture_bundle, source, "-o", out, "--labels", labels, "-q") == 0
    rows = read_jsonl(out)
    expected = ZeroShotClassifier.from_pretrained(fixture_bundle)(texts, labels.split(","))
    assert [r["top_label"] for r in rows] == [e["labels"][0] for e in expected] == ["music", "animals", "cooking"]


@pytest.mark.parametrize("flags, offline", [([], False), (["--offline"], True)])
def test_ray_actors_load_with_the_drivers_offline_setting(bert_bundle, tmp_path, monkeypatch, flags, offline):
    """--ray actors get the driver's --offline (checked on the options they are built with; no Ray started)."""
    import zsl_onnx.ray as zray
    from zsl_onnx.classify.chunks import RayChunks
    from zsl_onnx.classify.cli import build_parser
    from zsl_onnx.classify.options import ClassifyOptions

    built = []

    class Pool:
        info = {"variant": "fp32", "max_length": "128", "hypothesis_template": "This example is {}."}

        def __init__(self, options, workers, threads):
            built.append(options)

    class FakeRay:
        @staticmethod
        def cluster_resources():
            return {"CPU": 2}

    monkeypatch.setattr(zray, "require_ray", lambda: FakeRay)
    monkeypatch.setattr(zray, "connect", lambda address: lambda: None)
    monkeypatch.setattr(zray, "ChunkPool", Pool)
    args = build_parser().parse_args([str(bert_bundle), str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                                      "--labels", "a,b", "--ray", *flags])
    RayChunks(ClassifyOptions.from_namespace(args), ["a", "b"])
    assert len(built) == 1 and built[0]["local_files_only"] is offline
    assert built[0]["model"] == str(bert_bundle)
