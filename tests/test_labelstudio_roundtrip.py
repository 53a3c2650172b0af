"""Predictions through a real Label Studio and back: import, read, annotate, export, evaluate.

Needs a Label Studio venv (``ZSL_LABEL_STUDIO``, see tests/labelstudio.py); skips without it.
The tasks file and the labelling config are zsl-classify's own ``--format label-studio`` output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from xml.etree import ElementTree
from pathlib import Path

import pytest
from labelstudio import LabelStudio, choices_config, label_studio_server

from zsl_onnx.classify.cli import main as classify_main
from zsl_onnx.evaluate.cli import main as evaluate_main

pytestmark = pytest.mark.labelstudio

LABELS = ["sports", "politics", 'Q&A <"it\'s">', "l'économie"]
TEXTS = ["The match went to extra time.", "Parliament voted on the new law.", "Stocks fell sharply today.",
         "The striker scored twice.", "A new tax on imports.", "Is it true? Ask the panel.", "Rain stopped play.",
         "The minister resigned.", "Prices rose again.", "The final whistle blew."]


def classify_to_label_studio(tmp_path: Path, bundle: Path) -> tuple[Path, Path]:
    """zsl-classify's own Label Studio output for TEXTS, and the labelling config written beside it."""
    source = tmp_path / "news.jsonl"
    source.write_text("".join(json.dumps({"id": f"r{i}", "text": t, "source": "fixture"}) + "\n"
                              for i, t in enumerate(TEXTS)), encoding="utf-8")
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    output = tmp_path / "tasks.json"
    assert classify_main([str(bundle), str(source), "-o", str(output), "--format", "label-studio",
                          "--labels-file", str(tmp_path / "labels.txt"), "--quiet"]) == 0
    return output, Path(f"{output}.label-config.xml")


@pytest.fixture(scope="module")
def studio() -> Iterator[LabelStudio]:
    with label_studio_server() as server:
        yield server


def test_predictions_survive_the_round_trip_and_the_export_evaluates(studio, bert_bundle, tmp_path, capsys):
    tasks_path, config_path = classify_to_label_studio(tmp_path, bert_bundle)
    written = {task["data"]["id"]: task for task in json.loads(tasks_path.read_text(encoding="utf-8"))}
    project = studio.create_project("zsl-onnx round trip", config_path.read_text(encoding="utf-8"))
    stored = ElementTree.fromstring(studio.project(project)["label_config"])
    assert [choice.get("value") for choice in stored.iter("Choice")] == LABELS  # <, & and quotes survive
    imported = studio.import_file(project, tasks_path)
    assert imported["task_count"] == len(TEXTS) and imported["prediction_count"] == len(TEXTS)

    tasks = {task["data"]["id"]: task for task in studio.tasks(project)}
    assert set(tasks) == set(written)
    for key, task in tasks.items():
        [prediction] = studio.predictions(task["id"])
        expected = written[key]["predictions"][0]
        assert prediction["model_version"] == expected["model_version"] and "zsl-onnx" in expected["model_version"]
        assert prediction["score"] == pytest.approx(expected["score"], abs=1e-9)
        assert prediction["result"][0]["value"]["choices"] == expected["result"][0]["value"]["choices"]
        assert task["data"] == written[key]["data"]

    predicted = {key: task["predictions"][0]["result"][0]["value"]["choices"][0] for key, task in written.items()}
    other = {key: next(label for label in LABELS if label != predicted[key]) for key in written}
    # r0-r4 confirmed, r5-r6 corrected (r6 first confirmed, then corrected: the latest counts),
    # r7 skipped by the annotator, r8-r9 never opened
    gold = {f"r{i}": predicted[f"r{i}"] for i in range(5)} | {"r5": other["r5"], "r6": other["r6"]}
    studio.annotate(tasks["r6"]["id"], [predicted["r6"]])
    for key, label in gold.items():
        studio.annotate(tasks[key]["id"], [label])
    studio.annotate(tasks["r7"]["id"], [], cancelled=True)

    export = tmp_path / "export.json"
    export.write_bytes(studio.export_json(project))
    assert len(json.loads(export.read_text(encoding="utf-8"))) == len(TEXTS)

    evaluate_main([str(tasks_path), "--gold", str(export), "--json", "--target-precision", "0.5"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == len(gold) == 7
    assert summary["accuracy"] == pytest.approx(5 / 7)  # r5 and r6 were corrected
    assert summary["records"]["gold_skipped"] == 3  # cancelled, never annotated (twice)
    assert sum(row["support"] for row in summary["per_label"].values()) == 7
