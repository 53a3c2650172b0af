"""Predictions through a real Label Studio and back: import, read, annotate, export, evaluate.

Needs a Label Studio venv (``ZSL_LABEL_STUDIO``, see tests/labelstudio.py); skips without it.
The tasks file is in the standard Label Studio task format with one prediction per task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from xml.etree import ElementTree
from pathlib import Path

import pytest
from labelstudio import LabelStudio, choices_config, label_studio_server

from zsl_onnx.evaluate.cli import main as evaluate_main

pytestmark = pytest.mark.labelstudio

LABELS = ["sports", "politics", 'Q&A <"it\'s">', "l'économie"]
MODEL_VERSION = "zsl-onnx test-bundle int8"
# (record id, predicted label, score, gold label or None, cancelled)
TASKS = [
    ("r0", "sports", 0.97, "sports", False),
    ("r1", "sports", 0.91, "sports", False),
    ("r2", "politics", 0.88, "politics", False),
    ("r3", 'Q&A <"it\'s">', 0.84, 'Q&A <"it\'s">', False),
    ("r4", "politics", 0.73, "l'économie", False),
    ("r5", "l'économie", 0.66, "l'économie", False),
    ("r6", "sports", 0.52, "politics", False),
    ("r7", "politics", 0.45, None, True),  # skipped by the annotator: not gold
    ("r8", 'Q&A <"it\'s">', 0.41, None, False),  # never annotated
    ("r9", "l'économie", 0.33, None, False),
]


def tasks_file(path: Path) -> list[dict]:
    tasks = [
        {
            "data": {"text": f"text number {i} about {label}", "id": key, "source": "fixture"},
            "predictions": [{
                "model_version": MODEL_VERSION,
                "score": score,
                "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
            }],
        }
        for i, (key, label, score, _, _) in enumerate(TASKS)
    ]
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return tasks


@pytest.fixture(scope="module")
def studio() -> Iterator[LabelStudio]:
    with label_studio_server() as server:
        yield server


def test_predictions_survive_the_round_trip_and_the_export_evaluates(studio, tmp_path, capsys):
    written = {task["data"]["id"]: task for task in tasks_file(tmp_path / "tasks.json")}
    project = studio.create_project("zsl-onnx round trip", choices_config(LABELS))
    stored = ElementTree.fromstring(studio.project(project)["label_config"])
    assert [choice.get("value") for choice in stored.iter("Choice")] == LABELS  # <, & and quotes survive
    imported = studio.import_file(project, tmp_path / "tasks.json")
    assert imported["task_count"] == len(TASKS) and imported["prediction_count"] == len(TASKS)

    tasks = {task["data"]["id"]: task for task in studio.tasks(project)}
    assert set(tasks) == set(written)
    for key, task in tasks.items():
        [prediction] = studio.predictions(task["id"])
        expected = written[key]["predictions"][0]
        assert prediction["model_version"] == MODEL_VERSION
        assert prediction["score"] == pytest.approx(expected["score"], abs=1e-9)
        assert prediction["result"][0]["value"]["choices"] == expected["result"][0]["value"]["choices"]
        assert task["data"] == written[key]["data"]

    for key, _, _, gold, cancelled in TASKS:
        if cancelled:
            studio.annotate(tasks[key]["id"], [], cancelled=True)
        elif gold is not None:
            if key == "r6":  # corrected later by the annotator: the latest annotation counts
                studio.annotate(tasks[key]["id"], ["sports"])
            studio.annotate(tasks[key]["id"], [gold])

    export = tmp_path / "export.json"
    export.write_bytes(studio.export_json(project))
    exported = json.loads(export.read_text(encoding="utf-8"))
    assert len(exported) == len(TASKS)

    evaluate_main([str(tmp_path / "tasks.json"), "--gold", str(export), "--json", "--target-precision", "0.5"])
    summary = json.loads(capsys.readouterr().out)
    annotated = [t for t in TASKS if t[3] is not None]
    right = sum(label == gold for _, label, _, gold, _ in annotated)
    assert summary["n"] == len(annotated) == 7
    assert summary["accuracy"] == pytest.approx(right / len(annotated))  # 5 of 7: r4 and r6 are wrong
    assert summary["records"]["gold_skipped"] == 3  # cancelled, never annotated (twice)
    assert summary["per_label"]['Q&A <"it\'s">']["support"] == 1
    assert summary["confusion_matrix"]["labels"] == sorted({g for *_, g, _ in annotated} | {t[1] for t in annotated})
