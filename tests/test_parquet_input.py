"""Parquet input to zsl-classify: the same records and rejects as the same rows in JSONL."""

from __future__ import annotations

import datetime
import json

import pytest

from zsl_onnx.classify.cli import main

pa = pytest.importorskip("pyarrow", reason="Parquet input needs pyarrow (pip install 'zsl-onnx[ray]')")
pq = pytest.importorskip("pyarrow.parquet")

ROWS = [
    {"id": 1, "text": "The match went to extra time.", "when": datetime.date(2024, 5, 1), "tags": ["a", "b"]},
    {"id": 2, "text": None, "when": datetime.date(2024, 5, 2), "tags": []},
    {"id": 3, "text": "Stocks fell after the rate decision — «again».", "when": None, "tags": ["c"]},
    {"id": 4, "text": "   ", "when": datetime.date(2024, 5, 4), "tags": None},
]


def test_parquet_rows_classify_like_the_same_jsonl(bert_bundle, tmp_path):
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "in.parquet", row_group_size=2)
    as_json = [{**row, "when": row["when"].isoformat() if row["when"] else None} for row in ROWS]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in as_json), encoding="utf-8")
    for name in ("in.parquet", "in.jsonl"):
        assert main([str(bert_bundle), str(tmp_path / name), "-o", str(tmp_path / f"{name}.out.jsonl"),
                     "--labels", "sports,economy", "--variant", "fp32", "--skip-invalid", "-q"]) == 0
    out = (tmp_path / "in.parquet.out.jsonl").read_text(encoding="utf-8")
    assert out == (tmp_path / "in.jsonl.out.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [1, 3]
    assert json.loads(out.splitlines()[0])["when"] == "2024-05-01"
    rejects = [json.loads(line) for line in (tmp_path / "in.parquet.out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (2, "text field 'text' is NoneType, not a string"), (4, "empty text in 'text'")]


def test_a_non_parquet_file_is_a_clear_error(bert_bundle, tmp_path, capsys):
    (tmp_path / "bad.parquet").write_text("not parquet\n", encoding="utf-8")
    assert main([str(bert_bundle), str(tmp_path / "bad.parquet"), "-o", str(tmp_path / "o.jsonl"),
                 "--labels", "a,b", "-q"]) == 1
    assert "Cannot read the input as Parquet" in capsys.readouterr().err
