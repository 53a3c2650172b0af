"""zsl-evaluate: numbers against a hand-computed fixture, every input shape, bad input, streaming."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from zsl_onnx.evaluate.cli import main
from zsl_onnx.evaluate.metrics import bucket, wilson

LABELS = ["sports", "politics", "economy"]
# (id, gold, predicted top label, top score). Hand-computed: 7 of 10 right; ties at 0.90, 0.80
# and 0.60; per label (precision, recall): sports (2/2, 2/4), politics (3/5, 3/3), economy (2/3, 2/3).
FIXTURE = [
    (1, "sports", "sports", 0.95), (2, "sports", "sports", 0.90), (3, "politics", "politics", 0.90),
    (4, "economy", "politics", 0.80), (5, "economy", "economy", 0.80), (6, "politics", "politics", 0.70),
    (7, "sports", "economy", 0.60), (8, "politics", "politics", 0.60), (9, "economy", "economy", 0.50),
    (10, "sports", "politics", 0.40),
]
MACRO_F1 = (2 * 1 * 0.5 / 1.5 + 2 * 0.6 * 1 / 1.6 + 2 / 3) / 3


def ranked(top: str, score: float) -> tuple[list[str], list[float]]:
    rest = round((1 - score) / 2, 6)
    return [top, *[label for label in LABELS if label != top]], [score, rest, rest]


def zsl_rows(gold: bool = True) -> list[dict]:
    rows = []
    for key, label, top, score in FIXTURE:
        labels, scores = ranked(top, score)
        row = {"id": key, "text": f"text {key}", **({"gold": label} if gold else {})}
        rows.append({**row, "labels": labels, "scores": scores, "top_label": top, "top_score": score})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(rows[0]))
        for row in rows:
            writer.writerow([json.dumps(v) if isinstance(v, list) else v for v in row.values()])
    return path


def ls_tasks(path: Path) -> Path:
    tasks = [{"id": 100 + key, "data": {"text": f"text {key}", "id": key, "gold": label}, "predictions": [
        {"model_version": "m", "score": score,
         "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [top]}}]}]}
        for key, label, top, score in FIXTURE]
    path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    return path


def argilla_v1(path: Path) -> Path:
    rows = []
    for row in zsl_rows():
        pairs = [[label, score] for label, score in zip(row["labels"], row["scores"])]
        rows.append({"text": row["text"], "prediction": pairs, "prediction_agent": "m", "multi_label": False,
                     "metadata": {"id": row["id"], "gold": row["gold"], "line": row["id"]}})
    return write_jsonl(path, rows)


def argilla_v2(path: Path) -> Path:
    rows = [{"id": str(key), "fields": {"text": f"text {key}"}, "metadata": {"gold": label},
             "suggestions": {"label": {"value": top, "score": score, "agent": "m"}}, "responses": {}}
            for key, label, top, score in FIXTURE]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def evaluate(capsys, *args: str) -> dict:
    main([*map(str, args), "--json"])
    return json.loads(capsys.readouterr().out)


def refused(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(map(str, args)))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.startswith("zsl-evaluate: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- the numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (7, 10, 0.396778, 0.892209), (7, 9, 0.452589, 0.936775), (3, 3, 0.438503, 1.0),
    (0, 5, 0.0, 0.434482), (95, 100, 0.88825, 0.978456), (1, 1, 0.206549, 1.0),
])
def test_wilson_interval_matches_hand_computed_bounds(k, n, low, high):
    # by hand: (2np + z^2 -+ z sqrt(z^2 + 4np(1-p))) / (2(n + z^2)), z = 1.959964
    assert wilson(k, n) == pytest.approx((low, high), abs=1e-6)


def test_bucket_floors_to_the_grid_so_a_threshold_on_it_is_exact():
    assert [bucket(0.95), bucket(0.949999), bucket(0.29), bucket(1.0), bucket(0.0)] == [9500, 9499, 2900, 10000, 0]


def test_accuracy_macro_f1_per_label_and_confusion_by_hand(tmp_path, capsys):
    summary = evaluate(capsys, write_jsonl(tmp_path / "p.jsonl", zsl_rows()), "--gold-field", "gold")
    assert summary["n"] == 10 and summary["accuracy"] == pytest.approx(0.7)
    assert summary["macro_f1"] == pytest.approx(MACRO_F1)
    per = summary["per_label"]
    assert (per["sports"]["precision"], per["sports"]["recall"], per["sports"]["support"]) == (1.0, 0.5, 4)
    assert (per["politics"]["precision"], per["politics"]["recall"]) == (pytest.approx(0.6), 1.0)
    assert per["economy"]["f1"] == pytest.approx(2 / 3)
    assert summary["confusion_matrix"] == {"labels": ["economy", "politics", "sports"],
                                           "rows": [[2, 1, 0], [0, 3, 0], [1, 1, 2]]}
    assert summary["records"] == {"predictions": 10, "without_gold": 0, "gold": None, "gold_skipped": None,
                                  "gold_without_prediction": None}


@pytest.mark.parametrize(("target", "threshold", "records", "right"), [
    (0.45, 0.5, 9, 7),  # (7, 9) -> 0.4526; the lowest threshold reaching it, though 0.6 (6, 8) -> 0.4093 does not
    (0.40, 0.5, 9, 7),  # (7, 10) -> 0.3968 misses
    (0.20, 0.4, 10, 7),
    (0.46, None, 0, 0),  # no threshold's lower bound reaches 0.46: (3, 3) -> 0.4385, (5, 6) -> 0.4365
    (0.95, None, 0, 0),
])
def test_recommended_threshold_is_the_lowest_whose_lower_bound_reaches_the_target(
        tmp_path, capsys, target, threshold, records, right):
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows())
    summary = evaluate(capsys, predictions, "--gold-field", "gold", "--target-precision", target)
    assert summary["recommended_threshold"] == threshold
    if threshold is None:
        assert summary["coverage"] is None and summary["precision"] is None
    else:
        assert summary["coverage"] == pytest.approx(records / 10)
        assert summary["precision"] == pytest.approx(right / records)
        assert summary["precision_low"] == pytest.approx(wilson(right, records)[0])


def test_ties_at_a_threshold_are_all_in_or_all_out(tmp_path, capsys):
    summary = evaluate(capsys, write_jsonl(tmp_path / "p.jsonl", zsl_rows()), "--gold-field", "gold")
    rows = {row["threshold"]: row for row in summary["thresholds"]}
    assert (rows[0.8]["records"], rows[0.8]["correct"]) == (5, 4)  # both 0.80 records, one of them wrong
    assert (rows[0.8001]["records"] if 0.8001 in rows else rows[0.85]["records"]) == 3
    assert (rows[0.6]["records"], rows[0.65]["records"]) == (8, 6)
    scores = [score for *_, score in FIXTURE]
    for threshold, row in rows.items():
        assert row["records"] == sum(score >= threshold for score in scores), threshold
    assert rows[1.0]["records"] == 0 and rows[1.0]["precision"] is None
    grid = [round(i * 0.05, 2) for i in range(21)]
    assert set(grid) <= set(rows) and {0.95, 0.9, 0.7, 0.5, 0.4} <= set(rows)


def test_the_terminal_summary_shows_the_table_and_the_recommendation(tmp_path, capsys):
    main([str(write_jsonl(tmp_path / "p.jsonl", zsl_rows())), "--gold-field", "gold", "--target-precision", "0.45"])
    out = capsys.readouterr().out
    assert "accuracy 0.7000   macro-F1 0.6944" in out
    assert "recommended threshold: 0.5000 (coverage 0.9000, precision 0.7778" in out
    assert "0.5000    0.9000        9     0.7778  [0.453, 0.937]  <- recommended" in out


@pytest.mark.parametrize("shape", ["csv", "label_studio", "argilla_v1", "argilla_v2", "top_only"])
def test_every_output_shape_gives_the_same_numbers(tmp_path, capsys, shape):
    if shape == "csv":
        path = write_csv(tmp_path / "p.csv", zsl_rows())
    elif shape == "label_studio":
        path = ls_tasks(tmp_path / "tasks.json")
    elif shape == "argilla_v1":
        path = argilla_v1(tmp_path / "p.jsonl")
    elif shape == "argilla_v2":
        path = argilla_v2(tmp_path / "records.json")
    else:
        rows = [{k: v for k, v in row.items() if k not in ("labels", "scores")} for row in zsl_rows()]
        path = write_csv(tmp_path / "p.csv", rows)
    summary = evaluate(capsys, path, "--gold-field", "gold", "--target-precision", "0.45")
    assert (summary["n"], summary["accuracy"], summary["recommended_threshold"]) == (10, pytest.approx(0.7), 0.5)
    assert summary["macro_f1"] == pytest.approx(MACRO_F1)


def test_a_field_prefix_names_the_prediction_fields(tmp_path, capsys):
    rows = [{("zsl_" + k if k in ("labels", "scores", "top_label", "top_score") else k): v for k, v in row.items()}
            for row in zsl_rows()]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    assert evaluate(capsys, path, "--gold-field", "gold", "--field-prefix", "zsl_")["accuracy"] == pytest.approx(0.7)
    assert "--field-prefix" in refused(capsys, path, "--gold-field", "gold")


# -- gold exports ---------------------------------------------------------------------------


def annotation(label: str | None, updated: str, ident: int, cancelled: bool = False) -> dict:
    result = [] if label is None else [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
    return {"id": ident, "result": result, "was_cancelled": cancelled, "updated_at": updated}


def ls_export(path: Path, gold: dict | None = None) -> Path:
    """A Label Studio JSON export: records 1-8 annotated, 9 cancelled, 10 never annotated."""
    gold = gold or {key: label for key, label, *_ in FIXTURE}
    tasks = []
    for key, label in gold.items():
        notes = [annotation(label, "2026-01-02T00:00:00Z", 2 * key)]
        if key == 3:  # corrected: an older, wrong annotation and the latest, right one
            notes = [annotation("sports", "2026-01-01T00:00:00Z", 5000), *notes]
        if key == 9:
            notes = [annotation(label, "2026-01-03T00:00:00Z", 7000, cancelled=True)]
        if key == 10:
            notes = []
        tasks.append({"id": 100 + key, "data": {"text": f"text {key}", "id": key}, "annotations": notes,
                      "predictions": [1]})
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def test_label_studio_export_latest_annotation_skips_cancelled(tmp_path, capsys):
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows(gold=False))
    summary = evaluate(capsys, predictions, "--gold", ls_export(tmp_path / "export.json"))
    # records 1-8: right are 1, 2, 3, 5, 6, 8
    assert summary["n"] == 8 and summary["accuracy"] == pytest.approx(6 / 8)
    assert summary["records"] == {"predictions": 10, "without_gold": 2, "gold": 8, "gold_skipped": 2,
                                  "gold_without_prediction": 0}


def test_label_studio_export_joins_on_the_task_id_without_a_data_id(tmp_path, capsys):
    export = json.loads(ls_export(tmp_path / "export.json").read_text())
    for task in export:
        del task["data"]["id"]
    (tmp_path / "export.json").write_text(json.dumps(export))
    rows = [{**row, "task": 100 + row["id"]} for row in zsl_rows(gold=False)]
    summary = evaluate(capsys, write_jsonl(tmp_path / "p.jsonl", rows), "--gold", tmp_path / "export.json",
                       "--id-field", "task")
    assert summary["n"] == 8


def test_argilla_export_responses_and_disagreement(tmp_path, capsys):
    records = [{"id": str(key), "fields": {"text": f"text {key}"}, "metadata": {}, "suggestions": {},
                "responses": {"label": [{"value": label, "user_id": "u1"}]}, "vectors": {}, "status": "completed",
                "_server_id": None} for key, label, *_ in FIXTURE]
    records[0]["responses"]["label"].append({"value": "politics", "user_id": "u2"})  # disagreement: skipped
    records[1]["responses"] = {}  # not annotated
    (tmp_path / "argilla.json").write_text(json.dumps(records))
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows(gold=False))
    summary = evaluate(capsys, predictions, "--gold", tmp_path / "argilla.json")
    assert summary["n"] == 8 and summary["accuracy"] == pytest.approx(5 / 8)  # 3, 5, 6, 8, 9 right
    assert summary["records"]["gold_skipped"] == 2


def test_argilla_sdk_export_shape(tmp_path, capsys):
    """The same, on records the Argilla 2.x SDK itself exports (when it is installed; not in [dev]:
    its datasets and huggingface-hub requirements clash with the exporter's transformers pin)."""
    rg = pytest.importorskip("argilla")
    from argilla.records._io._generic import GenericIO

    users = ["00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"]
    records = []
    for key, label, *_ in FIXTURE:
        responses = [rg.Response("label", label, user_id=users[0])]
        if key == 1:
            responses.append(rg.Response("label", "politics", user_id=users[1]))  # disagreement: skipped
        records.append(rg.Record(id=str(key), fields={"text": f"text {key}"}, responses=responses))
    (tmp_path / "argilla.json").write_text(json.dumps(GenericIO.to_list(records, flatten=False), default=str))
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows(gold=False))
    summary = evaluate(capsys, predictions, "--gold", tmp_path / "argilla.json")
    assert summary["n"] == 9 and summary["accuracy"] == pytest.approx(6 / 9)


def test_multi_label_per_label_tables(tmp_path, capsys):
    rows = [
        {"id": 1, "gold": ["sports", "economy"], "labels": ["sports", "economy", "politics"], "scores": [0.9, 0.7, 0.1]},
        {"id": 2, "gold": ["politics"], "labels": ["politics", "economy", "sports"], "scores": [0.8, 0.6, 0.2]},
        {"id": 3, "gold": ["economy"], "labels": ["economy", "sports", "politics"], "scores": [0.4, 0.3, 0.2]},
        {"id": 4, "gold": '["sports"]', "labels": ["sports", "politics", "economy"], "scores": [0.95, 0.5, 0.05]},
    ]
    summary = evaluate(capsys, write_jsonl(tmp_path / "p.jsonl", rows), "--gold-field", "gold", "--multi-label",
                       "--target-precision", "0.2")
    # at 0.5: 1 {sports, economy} right; 2 {politics, economy} wrong; 3 {} wrong; 4 {sports, politics} wrong
    assert summary["n"] == 4 and summary["accuracy"] == pytest.approx(0.25)
    assert summary["confusion_matrix"]["economy"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert summary["per_label"]["politics"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1, "predicted": 2})
    economy = summary["per_label_thresholds"]["economy"]
    rows_at = {row["threshold"]: row for row in economy["thresholds"]}
    assert (rows_at[0.4]["records"], rows_at[0.4]["correct"]) == (3, 2)
    # economy's scores 0.7 (gold), 0.6, 0.4 (gold), 0.05: at 0.05 (2, 4) -> 0.150 misses, at 0.4 (2, 3) -> 0.208
    assert economy["recommended"]["threshold"] == 0.4
    # politics: 0.8 (gold), 0.5, 0.2, 0.1: only (1, 1) -> 0.2065 at 0.8 reaches 0.2; (1, 2) -> 0.0945
    assert summary["per_label_thresholds"]["politics"]["recommended"]["threshold"] == 0.8
    assert summary["thresholds"][0]["correct"] == 4  # the top label is among the gold labels for every record
    assert summary["recommended_threshold"] == 0.4


# -- bad input ------------------------------------------------------------------------------


def test_gold_labels_not_among_the_predicted_ones(tmp_path, capsys):
    rows = zsl_rows()
    rows[0]["gold"] = "weather"
    assert "'weather'" in refused(capsys, write_jsonl(tmp_path / "p.jsonl", rows), "--gold-field", "gold")


def test_no_id_in_common(tmp_path, capsys):
    export = ls_export(tmp_path / "export.json", {key + 1000: label for key, label, *_ in FIXTURE})
    err = refused(capsys, write_jsonl(tmp_path / "p.jsonl", zsl_rows(gold=False)), "--gold", export)
    assert "no id in common" in err


def test_duplicate_ids_on_either_side(tmp_path, capsys):
    rows = zsl_rows(gold=False)
    rows[4]["id"] = 1
    export = ls_export(tmp_path / "export.json")
    assert "occurs twice" in refused(capsys, write_jsonl(tmp_path / "p.jsonl", rows), "--gold", export)
    tasks = json.loads(export.read_text())
    tasks[1]["data"]["id"] = 1
    export.write_text(json.dumps(tasks))
    err = refused(capsys, write_jsonl(tmp_path / "p.jsonl", zsl_rows(gold=False)), "--gold", export)
    assert "occurs twice in the gold export" in err


@pytest.mark.parametrize(("content", "expected"), [
    ("", "is empty"), ("[]", "holds no records"), ("  \n", "is empty"),
    ('[{"id": 1, "text": "x"}]', "not a Label Studio export"),
    ('[{"id": 1, "annotations": []}]', "holds no annotated record"),
    ("[{\"id\": 1, \"annotations\": [SECRET-TEXT", "invalid JSON"),
    ('{"annotations": "SECRET-TEXT"}', "'annotations' is not a list"),
    ("SECRET-TEXT", "neither JSONL"),
])
def test_empty_or_wrong_format_export(tmp_path, capsys, content, expected):
    (tmp_path / "export.json").write_text(content)
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows(gold=False))
    err = refused(capsys, predictions, "--gold", tmp_path / "export.json")
    assert expected in err and "SECRET" not in err


@pytest.mark.parametrize("target", ["0", "-0.1", "1.5", "nan"])
def test_target_precision_outside_zero_one(tmp_path, capsys, target):
    err = refused(capsys, tmp_path / "missing.jsonl", "--gold-field", "gold", "--target-precision", target)
    assert "--target-precision must be in (0, 1]" in err


def test_target_precision_of_one_is_allowed(tmp_path, capsys):
    summary = evaluate(capsys, write_jsonl(tmp_path / "p.jsonl", zsl_rows()), "--gold-field", "gold",
                       "--target-precision", "1")
    assert summary["recommended_threshold"] is None  # a lower bound never reaches 1


def test_unreadable_files(tmp_path, capsys):
    assert "cannot read predictions" in refused(capsys, tmp_path / "missing.jsonl", "--gold-field", "gold")
    assert "is a directory" in refused(capsys, tmp_path, "--gold-field", "gold")
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows())
    assert "cannot read gold export" in refused(capsys, predictions, "--gold", tmp_path / "nope.json")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": 1, "labels": ["caf\xe9"]}\n')
    assert "not UTF-8" in refused(capsys, tmp_path / "latin1.jsonl", "--gold-field", "gold")


@pytest.mark.parametrize("content", [
    '{"id": 1, "labels": ["sports"], "scores": [0.5], "gold": "sports"}\n{"SECRET-TEXT": \n',
    '{"id": 1, "labels": ["sports"], "scores": [NaN], "gold": "SECRET-TEXT"}\n',
    '[{"id": 1, "labels": ["sports"], "scores": [0.5], "gold": "sports"} {"SECRET-TEXT": 1}]',
    '[{"id": 1, "labels": ["sports"], "scores": [0.5], "gold": "sports", "x": "SECRET-TEXT',
])
def test_invalid_json_is_one_line_without_the_contents(tmp_path, capsys, content):
    path = tmp_path / ("p.json" if content.startswith("[") else "p.jsonl")
    path.write_text(content)
    err = refused(capsys, path, "--gold-field", "gold")
    assert "invalid JSON" in err and "SECRET" not in err


@pytest.mark.parametrize(("change", "expected"), [
    ({"scores": [1.5, 0.1, 0.1]}, "a score is not a number from 0 to 1"),
    ({"scores": [0.5]}, "not a list as long as the labels"),
    ({"labels": "sports"}, "not a non-empty list"),
    ({"gold": ["sports", "politics"]}, "pass --multi-label"),
])
def test_bad_prediction_records_name_the_line(tmp_path, capsys, change, expected):
    rows = zsl_rows()
    rows[2].update(change)
    err = refused(capsys, write_jsonl(tmp_path / "p.jsonl", rows), "--gold-field", "gold")
    assert expected in err and "line 3" in err


def test_no_record_with_a_gold_label_and_an_empty_predictions_file(tmp_path, capsys):
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows(gold=False))
    assert "no prediction has a gold label in the field 'gold'" in refused(capsys, predictions, "--gold-field", "gold")
    (tmp_path / "empty.jsonl").write_text("")
    assert "is empty" in refused(capsys, tmp_path / "empty.jsonl", "--gold-field", "gold")


def test_report_extension_is_checked_before_the_data_is_read(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    err = refused(capsys, tmp_path / "missing.jsonl", "--gold-field", "gold", "--report", tmp_path / "eval.xyz")
    assert "matplotlib cannot write 'xyz'" in err
    err = refused(capsys, tmp_path / "missing.jsonl", "--gold-field", "gold", "--report", tmp_path / "no" / "e.png")
    assert "does not exist" in err


def test_report_png_is_drawn(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    predictions = write_jsonl(tmp_path / "p.jsonl", zsl_rows())
    main([str(predictions), "--gold-field", "gold", "--report", str(tmp_path / "eval.png"), "--target-precision", "0.4"])
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "recommended threshold: 0.5000" in capsys.readouterr().out


# -- streaming ------------------------------------------------------------------------------


_PEAK_RSS = (
    "import resource, sys\n"
    "from zsl_onnx.evaluate.cli import main\n"
    "main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"  # KiB on Linux
)


def write_generated(path: Path, records: int) -> Path:
    """zsl-classify-shaped records: every tenth one's gold label differs from the top label."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(records):
            top, score = LABELS[i % 3], round(0.34 + (i * 7919 % 6600) / 10_000, 4)
            labels, scores = ranked(top, score)
            gold = top if i % 10 else LABELS[(i + 1) % 3]
            handle.write(json.dumps({"id": i, "text": f"record {i} " + "x" * 40, "gold": gold, "labels": labels,
                                     "scores": scores, "top_label": top, "top_score": score}) + "\n")
    return path


def peak_rss_kib(*args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, *map(str, args), "--json"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.split()[-1]), json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
def test_200k_records_evaluate_in_bounded_memory(tmp_path):
    small = write_generated(tmp_path / "small.jsonl", 2_000)
    big = write_generated(tmp_path / "big.jsonl", 200_000)
    assert big.stat().st_size > 30_000_000  # read whole, it alone would outgrow the bound below
    baseline, _ = peak_rss_kib(small, "--gold-field", "gold")
    peak, summary = peak_rss_kib(big, "--gold-field", "gold")
    assert summary["n"] == 200_000 and summary["accuracy"] == pytest.approx(0.9)
    assert peak - baseline < 25_000, f"peak RSS grew by {(peak - baseline) / 1024:.0f} MiB from 2k to 200k records"
    # joined by id to a hand-labelled sample: only the sample's ids are held
    sample = [{"id": 100 + i, "data": {"id": i * 97}, "annotations": [annotation(LABELS[i * 97 % 3], "t", i)]}
              for i in range(1_000)]
    (tmp_path / "export.json").write_text(json.dumps(sample))
    joined_peak, joined = peak_rss_kib(big, "--gold", tmp_path / "export.json")
    assert joined["n"] == 1_000 and joined["records"]["without_gold"] == 199_000
    assert joined_peak - baseline < 25_000
