"""Ray scale-out on a local cluster: the map_batches class, zsl-classify --ray, a killed actor."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'zsl-onnx[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'zsl-onnx[ray]')")

import zsl_onnx.ray as zray  # noqa: E402
from zsl_onnx import InvalidInputError, TruncationWarning, ZeroShotClassifier  # noqa: E402
from zsl_onnx.classify.truncation import DROPPED  # noqa: E402

pytestmark = pytest.mark.slow  # a local Ray cluster takes seconds to start

LABELS = ["sports", "economy", "politics"]
TEXTS = [
    "The match went to extra time.",
    "Stocks fell sharply after the rate decision.",
    "Parliament passed the budget late on Friday.",
    "Café owners in Zürich raised prices — again.",
    "A late goal decided the derby.",
    "مرحبا بالعالم",
    "The central bank kept rates unchanged.",
]


@pytest.fixture(scope="session")
def ray_cluster():
    """One local two-CPU cluster for every Ray test; shut down at the end of the session."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors can build KillOnce
    yield ray
    if started:
        ray.shutdown()


def expected_fields(bundle: Path, texts: list[str], threshold: float | None) -> list[dict]:
    clf = ZeroShotClassifier.from_pretrained(bundle, variant="fp32")
    out = []
    for result in clf(texts, LABELS):
        scores = [round(s, 6) for s in result["scores"]]
        row = {"labels": result["labels"], "scores": scores, "top_label": result["labels"][0], "top_score": scores[0]}
        if threshold is not None:
            row["above_threshold"] = scores[0] >= threshold
        out.append(row)
    return out


@pytest.mark.parametrize("batch_format", ["pandas", "numpy"])
def test_map_batches_adds_the_classifier_fields(ray_cluster, bert_bundle, batch_format):
    items = [{"id": i, "text": text} for i, text in enumerate(TEXTS)]
    ds = ray_cluster.data.from_items(items, override_num_blocks=3)
    out = zray.classify_dataset(
        ds, bert_bundle, LABELS, workers=2, batch_format=batch_format, records_per_batch=2,
        variant="fp32", threshold=0.4,
    )
    rows = sorted(out.take_all(), key=lambda row: row["id"])
    assert [(row["id"], row["text"]) for row in rows] == [(i, t) for i, t in enumerate(TEXTS)]
    for row, expected in zip(rows, expected_fields(bert_bundle, TEXTS, 0.4)):
        assert list(row["labels"]) == expected["labels"]
        assert row["top_label"] == expected["top_label"]
        np.testing.assert_allclose(np.asarray(row["scores"], dtype=float), expected["scores"], atol=2e-6)
        assert abs(row["top_score"] - expected["top_score"]) <= 2e-6
        assert bool(row["above_threshold"]) == (row["top_score"] >= 0.4)


def test_mapper_in_process_never_modifies_its_batch(bert_bundle):
    pd = pytest.importorskip("pandas")
    mapper = zray.ZeroShotMapper(bert_bundle, LABELS, variant="fp32", text_column="body")
    batch = pd.DataFrame({"body": TEXTS[:3], "id": [1, 2, 3]})
    out = mapper(batch)
    assert list(batch.columns) == ["body", "id"]  # the caller's frame is untouched
    assert list(out.columns) == ["body", "id", "labels", "scores", "top_label", "top_score"]
    assert [row["top_label"] for row in expected_fields(bert_bundle, TEXTS[:3], None)] == list(out["top_label"])
    with pytest.raises(InvalidInputError, match="already has columns \\['labels'\\]"):
        mapper(out.drop(columns=["scores", "top_label", "top_score"]))
    prefixed = zray.ZeroShotMapper(bert_bundle, LABELS, variant="fp32", text_column="body", field_prefix="zsl_")(out)
    assert list(prefixed["zsl_top_label"]) == list(out["top_label"]) and list(prefixed["labels"]) == list(out["labels"])
    with pytest.raises(InvalidInputError, match="no column 'body'"):
        mapper({"text": np.array(TEXTS[:2])})
    with pytest.raises(InvalidInputError, match="Row 1 .* not a non-empty string"):
        mapper({"body": np.array(["fine", "  "])})


def test_chunk_pool_keeps_order_and_maps_worker_errors(ray_cluster, bert_bundle):
    pool = zray.ChunkPool({"model": str(bert_bundle), "labels": LABELS, "variant": "fp32"}, workers=2, threads=1)
    try:
        assert pool.info["variant"] == "fp32"
        chunks = [TEXTS[i : i + 2] for i in range(0, len(TEXTS), 2)]
        got = list(pool.map(chunks, lambda chunk: chunk))
        clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
        assert [chunk for chunk, _ in got] == chunks
        assert [results for _, results in got] == [[{**r, DROPPED: 0} for r in clf(chunk, LABELS)] for chunk in chunks]
        with pytest.raises(InvalidInputError, match="empty or only whitespace"):
            list(pool.map([["fine", " "]], lambda chunk: chunk))
    finally:
        pool.close()
    with pytest.raises(InvalidInputError, match="3 workers x 1 threads need 3 CPUs, but the Ray cluster has 2"):
        zray.ChunkPool({"model": str(bert_bundle), "labels": LABELS}, workers=3, threads=1)


class KillOnce(zray.ZeroShotMapper):
    """Exits its process (as a crash or an OOM kill would) the first time it meets MARKER_TEXT."""

    marker: Path | None = None  # set by the test; the class travels to the actors by value

    def classify(self, texts):
        if MARKER_TEXT in texts and self.marker is not None and not self.marker.exists():
            self.marker.write_text(str(os.getpid()), encoding="utf-8")
            os._exit(1)
        return super().classify(texts)


MARKER_TEXT = "Record 13 about the weather."


def test_a_killed_actor_is_restarted_and_every_chunk_comes_back_once(ray_cluster, bert_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(KillOnce, "marker", tmp_path / "killed")
    monkeypatch.setattr(zray, "ZeroShotMapper", KillOnce)
    texts = [f"Record {i} about the weather." for i in range(30)]
    chunks = [texts[i : i + 3] for i in range(0, len(texts), 3)]
    pool = zray.ChunkPool({"model": str(bert_bundle), "labels": LABELS, "variant": "fp32"}, workers=2, threads=1)
    try:
        got = list(pool.map(chunks, lambda chunk: chunk))
    finally:
        pool.close()
    assert (tmp_path / "killed").exists()  # an actor did die, in the middle of the run
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
    assert [chunk for chunk, _ in got] == chunks
    assert [r["sequence"] for _, results in got for r in results] == texts  # each record once, in order
    assert [results for _, results in got] == [[{**r, DROPPED: 0} for r in clf(chunk, LABELS)] for chunk in chunks]


def corpus(path: Path, n: int) -> None:
    """JSONL with varied fields and two bad lines, so rejects and line numbers are compared too."""
    lines = []
    for i in range(n):
        if i == 5:
            lines.append('{"id": 5, "text": ')  # malformed JSON
        elif i == 11:
            lines.append(json.dumps({"id": 11, "body": "no text field"}))
        else:
            lines.append(json.dumps({"id": i, "text": f"{TEXTS[i % len(TEXTS)]} ({i})", "meta": {"n": [i, None]}},
                                    ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def classify(capsys, *args) -> str:
    from zsl_onnx.classify.cli import main

    assert main([str(a) for a in args]) == 0
    return capsys.readouterr().err


def test_ray_run_writes_the_local_run_bytes_rejects_and_summary(ray_cluster, bert_bundle, tmp_path, capsys):
    corpus(tmp_path / "in.jsonl", 40)
    common = ["--labels", ",".join(LABELS), "--variant", "fp32", "--flush-every", 4, "--skip-invalid",
              "--threshold", 0.4]
    local_err = classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "local.jsonl", *common)
    ray_err = classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "ray.jsonl", *common,
                       "--ray", "--workers", 2)
    local = (tmp_path / "local.jsonl").read_bytes()
    assert len(local.splitlines()) == 38 and (tmp_path / "ray.jsonl").read_bytes() == local
    assert (tmp_path / "ray.jsonl.rejects.jsonl").read_text().replace("ray.jsonl", "") == \
        (tmp_path / "local.jsonl.rejects.jsonl").read_text().replace("local.jsonl", "")
    assert "38 classified, 2 rejected" in ray_err
    summary = [err[err.index("records:"):].replace(name, "") for err, name in ((ray_err, "ray.jsonl"), (local_err, "local.jsonl"))]
    assert summary[0] == summary[1]  # the summary after the progress bar, whose rates differ


def test_ray_run_reads_parquet_like_the_local_run(ray_cluster, bert_bundle, tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"id": i, "text": f"{TEXTS[i % len(TEXTS)]} ({i})" if i != 4 else None} for i in range(12)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=5)
    common = ["--labels", ",".join(LABELS), "--variant", "fp32", "--flush-every", 4, "--skip-invalid", "-q"]
    classify(capsys, bert_bundle, tmp_path / "in.parquet", "-o", tmp_path / "local.jsonl", *common)
    classify(capsys, bert_bundle, tmp_path / "in.parquet", "-o", tmp_path / "ray.jsonl", *common, "--ray", "--workers", 2)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert [json.loads(line)["id"] for line in (tmp_path / "ray.jsonl").read_text().splitlines()] == [
        i for i in range(12) if i != 4]


def test_ray_run_with_an_actor_killed_mid_run_has_every_record_once(ray_cluster, bert_bundle, tmp_path, monkeypatch,
                                                                    capsys):
    texts = [f"Record {i} about the weather." for i in range(30)]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    monkeypatch.setattr(KillOnce, "marker", tmp_path / "killed")
    monkeypatch.setattr(zray, "ZeroShotMapper", KillOnce)
    common = ["--labels", ",".join(LABELS), "--variant", "fp32", "--flush-every", 3]
    classify(capsys, bert_bundle, tmp_path / "in.txt", "-o", tmp_path / "ray.jsonl", *common, "--ray", "--workers", 2)
    assert (tmp_path / "killed").exists()  # the actor holding record 13 died
    rows = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == texts  # every record, once, in order
    classify(capsys, bert_bundle, tmp_path / "in.txt", "-o", tmp_path / "local.jsonl", *common)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_a_ray_run_stopped_by_a_bad_record_resumes_to_the_local_bytes(ray_cluster, bert_bundle, tmp_path, capsys):
    corpus(tmp_path / "in.jsonl", 20)  # line 6 is malformed JSON, line 12 lacks the text field
    common = ["--labels", ",".join(LABELS), "--variant", "fp32", "--flush-every", 4, "--threads", 1]
    from zsl_onnx.classify.cli import main

    assert main([str(a) for a in (bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "ray.jsonl", *common,
                                  "--ray", "--workers", 2)]) == 1
    assert "in.jsonl:6: malformed JSON" in capsys.readouterr().err
    assert len((tmp_path / "ray.jsonl").read_text().splitlines()) == 5  # the records before it
    lines = (tmp_path / "in.jsonl").read_text(encoding="utf-8").splitlines()
    lines[5], lines[11] = json.dumps({"id": 5, "text": "Fixed five."}), json.dumps({"id": 11, "text": "Fixed eleven."})
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "ray.jsonl", *common, "--resume",
             "--ray", "--workers", 2)
    classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "local.jsonl", *common)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_map_batches_survives_an_actor_killed_mid_run(ray_cluster, bert_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(KillOnce, "marker", tmp_path / "killed")
    texts = [f"Record {i} about the weather." for i in range(30)]
    ds = ray_cluster.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=10)
    out = ds.map_batches(KillOnce, fn_constructor_kwargs={"model": str(bert_bundle), "labels": LABELS, "variant": "fp32"},
                         concurrency=2, num_cpus=1, batch_size=3, batch_format="pandas")
    rows = out.take_all()
    assert (tmp_path / "killed").exists()  # the actor holding record 13 died
    assert sorted(row["id"] for row in rows) == list(range(30))  # every record exactly once
    expected = {t: r["labels"][0] for t, r in zip(texts, ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")(texts, LABELS))}
    assert all(row["top_label"] == expected[row["text"]] for row in rows)


def test_chunk_pool_counts_truncation_and_passes_long_text_on(ray_cluster, bert_bundle):
    long = "The football match went on and on. " * 120
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
    for options, cut in (({}, True), ({"long_text": "chunk", "max_windows": 40}, False)):
        pool = zray.ChunkPool({"model": str(bert_bundle), "labels": LABELS, "variant": "fp32", **options},
                              workers=1, threads=1)
        try:
            ((_, results),) = list(pool.map([[long, "short"]], lambda chunk: chunk))
        finally:
            pool.close()
        assert (results[0][DROPPED] > 100) is cut and results[1][DROPPED] == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)  # the call the pool's results are checked against
            expected = clf([long, "short"], LABELS, **options)
        assert [r["scores"] for r in results] == [e["scores"] for e in expected]


# -- a label set per record (--labels-field) on Ray -------------------------------------------

LABEL_SETS = [["sports", "economy"], ["politics", "weather", "music"], ["economy"], ["a", "b", "c", "d"]]
BAD_LABEL_SETS = {3: None, 7: [], 9: ["sports", "sports"], 12: 5, 14: "[not json"}  # None: the field is missing


def labelled_corpus(path: Path, n: int, bad: dict[int, object]) -> None:
    """JSONL whose records name their own labels (lists or comma strings), some of them bad."""
    records = []
    for i in range(n):
        labels = LABEL_SETS[i % len(LABEL_SETS)]
        record = {"id": i, "text": f"{TEXTS[i % len(TEXTS)]} ({i})", "l": labels if i % 2 else ", ".join(labels)}
        if i in bad:
            record.pop("l") if bad[i] is None else record.update(l=bad[i])
        records.append(json.dumps(record, ensure_ascii=False))
    path.write_text("\n".join(records) + "\n", encoding="utf-8")


@pytest.mark.parametrize("fmt, name, sidecar, flags", [
    ("label-studio", "out.json", ".label-config.xml", []),
    ("argilla", "out.jsonl", ".argilla-settings.json", ["--multi-label", "--threshold", 0.4]),
])
def test_labels_field_on_ray_writes_the_local_run_bytes_rejects_and_sidecars(ray_cluster, bert_bundle, tmp_path,
                                                                            capsys, fmt, name, sidecar, flags):
    labelled_corpus(tmp_path / "in.jsonl", 18, BAD_LABEL_SETS)
    common = ["--labels-field", "l", "--format", fmt, "--variant", "fp32", "--flush-every", 4, "--skip-invalid", *flags]
    (tmp_path / "local").mkdir(), (tmp_path / "ray").mkdir()
    local_err = classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "local" / name, *common)
    ray_err = classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "ray" / name, *common,
                       "--ray", "--workers", 2)
    for suffix in ("", sidecar, ".rejects.jsonl"):
        local = (tmp_path / "local" / (name + suffix)).read_text(encoding="utf-8")
        assert (tmp_path / "ray" / (name + suffix)).read_text(encoding="utf-8").replace("/ray/", "/local/") == local
    rejects = [json.loads(line) for line in (tmp_path / "ray" / (name + ".rejects.jsonl")).read_text().splitlines()]
    assert [r["line"] for r in rejects] == [i + 1 for i in sorted(BAD_LABEL_SETS)]
    assert "13 classified, 5 rejected" in ray_err
    assert all(label in (tmp_path / "ray" / (name + sidecar)).read_text(encoding="utf-8")
               for labels in LABEL_SETS for label in labels)  # every label seen, from every chunk and actor
    assert ray_err[ray_err.index("records:"):].replace("/ray/", "/local/") == local_err[local_err.index("records:"):]


def test_a_bad_label_set_on_ray_stops_the_run_like_a_local_one_and_resumes(ray_cluster, bert_bundle, tmp_path, capsys):
    from zsl_onnx.classify.cli import main

    labelled_corpus(tmp_path / "in.jsonl", 12, {6: ["a", "a"]})
    common = ["--labels-field", "l", "--variant", "fp32", "--flush-every", 4, "--threads", 1]
    messages = []
    for where, ray_flags in (("local", []), ("ray", ["--ray", "--workers", 2])):
        assert main([str(a) for a in (bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / f"{where}.jsonl", *common,
                                      *ray_flags)]) == 1
        err = capsys.readouterr().err
        messages.append(err[err.index("in.jsonl:7:"):].splitlines()[0].replace(where, "X"))
    assert messages[1].startswith("in.jsonl:7: candidate label 'a' appears twice in labels field 'l'")
    assert messages[0] == messages[1]
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert len((tmp_path / "ray.jsonl").read_text().splitlines()) == 6  # the records before it
    labelled_corpus(tmp_path / "in.jsonl", 12, {})
    classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "ray.jsonl", *common, "--resume",
             "--ray", "--workers", 2)
    classify(capsys, bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "local.jsonl", *common, "--resume")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert len((tmp_path / "ray.jsonl").read_text().splitlines()) == 12


def test_a_mapper_without_labels_classifies_the_label_sets_it_is_given(bert_bundle):
    mapper = zray.ZeroShotMapper(bert_bundle, None, variant="fp32")
    texts = TEXTS[:len(LABEL_SETS)]
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
    assert mapper.classify_counted(texts, LABEL_SETS) == [{**r, DROPPED: 0} for r in clf(texts, LABEL_SETS)]
    with pytest.raises(InvalidInputError, match="built without labels"):
        mapper({"text": np.array(texts)})
