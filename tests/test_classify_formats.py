"""zsl-classify's annotation-tool formats: Label Studio task arrays and Argilla 2.x (and 1.x) records."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from zsl_onnx import __version__
from zsl_onnx.classify.cli import run_command
from zsl_onnx.classify.plan import STATE_SUFFIX
from classify_helpers import Crash, classify, read_jsonl, write_jsonl

LABELS = "sports,economy,politics"
TRICKY_LABELS = ["R&D <lab>", 'say "hi"', "it's", "a\tb"]
TEXTS = [f"Record number {i} about {topic}." for i, topic in enumerate(["football", "markets", "elections"] * 4)]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    return path


def choice_values(xml_text):
    root = ET.fromstring(xml_text)
    return [choice.get("value") for choice in root.iter("Choice")], root


# -- Label Studio ---------------------------------------------------------------------------


def test_a_json_output_is_a_label_studio_task_array_with_its_config(bert_bundle, corpus, tmp_path):
    out = tmp_path / "tasks.json"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 5, "-q") == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("[\n") and text.endswith("\n]\n")
    tasks = json.loads(text)  # one JSON array: what Label Studio's file import takes
    assert len(tasks) == len(TEXTS) and len(text.splitlines()) == len(TEXTS) + 2  # a task a line
    jsonl = tmp_path / "plain.jsonl"
    assert classify(bert_bundle, corpus, "-o", jsonl, "--labels", LABELS, "--flush-every", 5, "-q") == 0
    for task, row in zip(tasks, read_jsonl(jsonl)):
        assert task["data"] == {"text": row["text"], "id": row["id"]}
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == f"{bert_bundle.name} int8 zsl-onnx {__version__}"
        assert prediction["score"] == row["top_score"]
        assert prediction["result"] == [{"from_name": "label", "to_name": "text", "type": "choices",
                                         "value": {"choices": [row["top_label"]]}}]
    values, root = choice_values(Path(str(out) + ".label-config.xml").read_text(encoding="utf-8"))
    assert values == LABELS.split(",")
    assert root.find("Choices").get("choice") == "single" and root.find("Text").get("value") == "$text"


def test_labels_with_markup_and_quotes_survive_the_config(bert_bundle, corpus, tmp_path, capsys):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(TRICKY_LABELS[:3]) + "\n", encoding="utf-8")
    out = tmp_path / "tasks.json"
    assert classify(bert_bundle, corpus, "-o", out, "--labels-file", labels_file, "--multi-label", "-q") == 0
    values, root = choice_values(Path(str(out) + ".label-config.xml").read_text(encoding="utf-8"))
    assert values == TRICKY_LABELS[:3] and root.find("Choices").get("choice") == "multiple"
    # --label-config prints the same config and classifies nothing
    assert classify(bert_bundle, corpus, "-o", tmp_path / "never.json", "--labels", ",".join(TRICKY_LABELS),
                    "--label-config") == 0
    printed, _ = choice_values(capsys.readouterr().out)
    assert printed == TRICKY_LABELS and not (tmp_path / "never.json").exists()


def test_multi_label_choices_are_the_labels_at_or_above_the_threshold(bert_bundle, corpus, tmp_path):
    plain, out = tmp_path / "plain.jsonl", tmp_path / "tasks.json"
    common = ["--labels", LABELS, "--multi-label", "-q"]
    assert classify(bert_bundle, corpus, "-o", plain, *common) == 0
    assert classify(bert_bundle, corpus, "-o", out, *common) == 0
    rows, tasks = read_jsonl(plain), json.loads(out.read_text(encoding="utf-8"))
    for threshold, found in ((None, tasks), (0.0, None)):
        if found is None:
            assert classify(bert_bundle, corpus, "-o", out, *common, "--threshold", threshold, "--overwrite") == 0
            found = json.loads(out.read_text(encoding="utf-8"))
        bar = 0.5 if threshold is None else threshold
        for task, row in zip(found, rows):
            expected = [label for label, score in zip(row["labels"], row["scores"]) if score >= bar]
            result = task["predictions"][0]["result"]
            assert (result[0]["value"]["choices"] if result else []) == expected
    assert any(task["predictions"][0]["result"] for task in found)  # threshold 0: every label chosen


def test_record_fields_never_replace_label_studio_keys(bert_bundle, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    write_jsonl(source, [{"body": "a match", "text": "mine", "id": 7, "predictions": "gold", "annotations": 1,
                          "meta": {"m": 1}, "data": "d"}])
    out = tmp_path / "tasks.json"
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--text-field", "body") == 1
    assert "field 'text' that the output would overwrite" in capsys.readouterr().err
    assert classify(bert_bundle, source, "-o", out, "--labels", LABELS, "--text-field", "body", "--overwrite",
                    "--field-prefix", "zsl_", "-q") == 0
    (task,) = json.loads(out.read_text(encoding="utf-8"))
    assert set(task) == {"data", "predictions"}  # record fields stay inside data
    assert task["data"] == {"zsl_text": "a match", "text": "mine", "id": 7, "predictions": "gold", "annotations": 1,
                            "meta": {"m": 1}, "data": "d"}
    _, root = choice_values(Path(str(out) + ".label-config.xml").read_text(encoding="utf-8"))
    assert root.find("Text").get("value") == "$zsl_text"


def test_label_studio_formats_and_names_that_disagree_are_refused(bert_bundle, corpus, tmp_path, capsys):
    assert classify(bert_bundle, corpus, "-o", tmp_path / "out.jsonl", "--labels", LABELS, "--format", "label-studio") == 1
    assert "does not match the output name" in capsys.readouterr().err
    assert classify(bert_bundle, corpus, "-o", tmp_path / "out.jsonl", "--labels", LABELS, "-q") == 0
    assert len(read_jsonl(tmp_path / "out.jsonl")) == len(TEXTS)  # .jsonl stays JSON Lines


def test_an_existing_config_is_never_replaced_without_overwrite(bert_bundle, corpus, tmp_path, capsys):
    out = tmp_path / "tasks.json"
    config = Path(str(out) + ".label-config.xml")
    config.write_text("<View>mine</View>", encoding="utf-8")
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS) == 1
    assert f"{config} exists; pass --overwrite" in capsys.readouterr().err
    assert config.read_text(encoding="utf-8") == "<View>mine</View>" and not out.exists()
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--overwrite", "-q") == 0
    assert choice_values(config.read_text(encoding="utf-8"))[0] == LABELS.split(",")


def _interrupted(bert_bundle, corpus, out, at):
    def fault(point, index):
        if (point, index) == at:
            raise Crash

    argv = [str(a) for a in (bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q")]
    with pytest.raises(Crash):
        run_command(argv, fault=fault)


@pytest.mark.parametrize("point", ["written", "checkpointed"])
@pytest.mark.parametrize("index", [0, 1, 3])
def test_a_crashed_task_array_resumes_to_the_uninterrupted_bytes(bert_bundle, corpus, tmp_path, point, index):
    whole = tmp_path / "whole.json"
    assert classify(bert_bundle, corpus, "-o", whole, "--labels", LABELS, "--flush-every", 3, "-q") == 0
    out = tmp_path / "out.json"
    _interrupted(bert_bundle, corpus, out, (point, index))
    assert not out.read_text(encoding="utf-8").endswith("]\n")  # unfinished: the array is not closed
    if (point, index) == ("checkpointed", 3):  # every record checkpointed: as if killed after closing the array
        with out.open("a", encoding="utf-8") as handle:
            handle.write("\n]\n")
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--flush-every", 3, "-q", "--resume") == 0
    assert out.read_bytes() == whole.read_bytes()
    assert not Path(str(out) + STATE_SUFFIX).exists()


def test_a_finished_task_array_has_nothing_to_resume(bert_bundle, corpus, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "-q") == 0
    before = out.read_bytes()
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "-q", "--resume") == 1
    assert "Nothing to resume" in capsys.readouterr().err and out.read_bytes() == before


def _exe():
    beside = Path(sys.executable).parent / "zsl-classify"
    return str(beside) if beside.exists() else "zsl-classify"


@pytest.mark.slow
def test_a_killed_label_studio_run_resumes_to_the_uninterrupted_file(bert_bundle, tmp_path):
    records = [{"id": i, "text": f"{TEXTS[i % len(TEXTS)]} number {i}"} for i in range(1500)]
    write_jsonl(tmp_path / "all.jsonl", records)
    flags = ["--labels", LABELS, "--flush-every", "40", "--threads", "1", "-q"]
    whole = tmp_path / "whole.json"
    assert subprocess.run([_exe(), str(bert_bundle), str(tmp_path / "all.jsonl"), *flags, "-o", str(whole)],
                          timeout=600).returncode == 0
    source, out = tmp_path / "in.jsonl", tmp_path / "part.json"
    os.mkfifo(source)  # holds back all but the first 600 records, so the kill lands mid-way
    state = Path(str(out) + STATE_SUFFIX)
    command = [_exe(), str(bert_bundle), str(source), *flags, "-o", str(out)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    release = threading.Event()

    def feed() -> None:
        with source.open("w", encoding="utf-8") as pipe:
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
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    release.set()
    writer.join(timeout=60)
    assert 400 <= json.loads(state.read_text())["records"] <= 600
    source.unlink()
    write_jsonl(source, records)
    with out.open("a", encoding="utf-8") as handle:
        handle.write(',\n{"data": {"text": "half a ta')  # what a crash mid-write leaves
    assert subprocess.run([*command, "--resume"], timeout=600).returncode == 0
    assert out.read_bytes() == whole.read_bytes()
    assert len(json.loads(out.read_text(encoding="utf-8"))) == len(records)


# -- Argilla --------------------------------------------------------------------------------


def test_argilla_records_are_2x_records_with_their_settings(bert_bundle, corpus, tmp_path):
    out, plain = tmp_path / "records.jsonl", tmp_path / "plain.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--format", "argilla", "-q") == 0
    assert classify(bert_bundle, corpus, "-o", plain, "--labels", LABELS, "-q") == 0
    for record, row in zip(read_jsonl(out), read_jsonl(plain)):
        assert record == {
            "id": str(row["id"] + 1), "fields": {"text": row["text"]}, "metadata": {"id": row["id"], "line": row["id"] + 1},
            "suggestions": {"label": {"value": row["top_label"], "score": row["top_score"],
                                      "agent": f"{bert_bundle.name} int8 zsl-onnx {__version__}"}},
        }
    settings = json.loads(Path(str(out) + ".argilla-settings.json").read_text(encoding="utf-8"))
    (question,) = settings["questions"]
    assert question["name"] == "label" and question["settings"]["type"] == "label_selection"
    assert [option["value"] for option in question["settings"]["options"]] == LABELS.split(",")
    assert [field["name"] for field in settings["fields"]] == ["text"]


def test_argilla_multi_label_suggests_the_labels_above_the_threshold(bert_bundle, corpus, tmp_path):
    out, plain = tmp_path / "records.jsonl", tmp_path / "plain.jsonl"
    common = ["--labels", LABELS, "--multi-label", "--threshold", "0.2", "-q"]
    assert classify(bert_bundle, corpus, "-o", out, "--format", "argilla", *common) == 0
    assert classify(bert_bundle, corpus, "-o", plain, *common) == 0
    for record, row in zip(read_jsonl(out), read_jsonl(plain)):
        chosen = [(label, score) for label, score in zip(row["labels"], row["scores"]) if score >= 0.2]
        suggestion = record["suggestions"].get("label")
        assert (suggestion["value"], suggestion["score"]) == ([c[0] for c in chosen], [c[1] for c in chosen])
    settings = json.loads(Path(str(out) + ".argilla-settings.json").read_text(encoding="utf-8"))
    assert settings["questions"][0]["settings"]["type"] == "multi_label_selection"


def test_argilla_v1_keeps_the_old_shape(bert_bundle, corpus, tmp_path):
    out = tmp_path / "v1.jsonl"
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--format", "argilla-v1", "-q") == 0
    first = read_jsonl(out)[0]
    assert set(first) == {"text", "prediction", "prediction_agent", "multi_label", "metadata"}
    assert first["prediction_agent"] == f"zsl-onnx:{bert_bundle.name}:int8"
    assert not Path(str(out) + ".argilla-settings.json").exists()


@pytest.fixture()
def argilla_offline(monkeypatch):
    """The SDK builds settings objects only with a default client; one that never calls a server."""
    rg = pytest.importorskip("argilla")
    from argilla._api._client import APIClient

    monkeypatch.setattr(APIClient, "_validate_connection", lambda self: None)
    rg.Argilla(api_url="http://127.0.0.1:9", api_key="never-sent")
    return rg


@pytest.mark.parametrize("multi", [False, True])
def test_the_argilla_sdk_reads_our_records_and_settings(bert_bundle, corpus, tmp_path, argilla_offline, multi):
    rg = argilla_offline
    out = tmp_path / "records.jsonl"
    flags = ["--multi-label", "--threshold", "0"] if multi else []
    assert classify(bert_bundle, corpus, "-o", out, "--labels", LABELS, "--format", "argilla", *flags, "-q") == 0
    settings = rg.Settings.from_json(str(out) + ".argilla-settings.json")
    question = settings.questions["label"]
    assert isinstance(question, rg.MultiLabelQuestion if multi else rg.LabelQuestion)
    assert list(question.labels) == LABELS.split(",") and settings.fields["text"] is not None
    for data in read_jsonl(out):
        record = rg.Record.from_dict(data)
        assert record.id == data["id"] and record.fields["text"] == data["fields"]["text"]
        assert record.metadata["line"] == data["metadata"]["line"]
        suggestion = record.suggestions["label"]
        assert suggestion.value == data["suggestions"]["label"]["value"]
        assert suggestion.score == data["suggestions"]["label"]["score"]
        assert record.to_dict()["suggestions"] == data["suggestions"]  # the SDK writes back what we wrote
