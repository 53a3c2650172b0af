"""zsl-classify with a label set per record (--labels-field) and long texts (--long-text, truncation counts)."""

import csv
import json
import subprocess
from pathlib import Path

import pytest

from zsl_onnx import TruncationWarning, ZeroShotClassifier
from zsl_onnx.classify.plan import STATE_SUFFIX
from classify_helpers import classify, exe, read_jsonl, write_jsonl

LABELS = "sports,economy,politics"
LONG = "The football match went on and on. " * 120  # far beyond the tiny model's 128 tokens
SETS = [["sports", "economy"], ["politics", "weather", "music"], ["economy"], ["a", "b", "c", "d"]]


# -- a label set per record -----------------------------------------------------------------


def test_each_record_is_classified_with_its_own_labels_like_the_api(bert_bundle, tmp_path, capsys):
    texts = [f"Text number {i} about something." for i in range(len(SETS))]
    # a JSON list, or a comma-separated string
    records = [{"text": t, "cands": s if i % 2 else ", ".join(s)} for i, (t, s) in enumerate(zip(texts, SETS))]
    write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels-field", "cands", "--flush-every", 3,
                    "--variant", "fp32") == 0
    rows = read_jsonl(out)
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
    for row, text, labels in zip(rows, texts, SETS):
        (alone,) = clf([text], [labels])
        assert row["labels"] == alone["labels"] and sorted(row["labels"]) == sorted(labels)
        assert row["scores"] == [round(float(s), 6) for s in alone["scores"]]
        assert row["cands"] == records[texts.index(text)]["cands"]  # the input field is kept as it was
    err = capsys.readouterr().err
    for label in dict.fromkeys(label for labels in SETS for label in labels):  # the summary covers the union
        assert f"\n  {label} " in err


def test_one_classifier_call_per_chunk_with_a_list_of_label_lists(bert_bundle, tmp_path, monkeypatch):
    write_jsonl(tmp_path / "in.jsonl", [{"text": f"t {i}", "l": SETS[i % 4]} for i in range(7)])
    calls = []
    real = ZeroShotClassifier.__call__

    def counting(self, texts, labels, **kwargs):
        calls.append((len(texts), labels))
        return real(self, texts, labels, **kwargs)

    monkeypatch.setattr(ZeroShotClassifier, "__call__", counting)
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--labels-field", "l",
                    "--flush-every", 4, "-q") == 0
    assert [n for n, _ in calls] == [4, 3]
    assert calls[1][1] == [SETS[0], SETS[1], SETS[2]]


def test_csv_cells_hold_json_lists_or_comma_strings(bert_bundle, tmp_path):
    source = tmp_path / "in.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "labels_in"])
        writer.writerow(["a match", json.dumps(["sports", "a, b"])])
        writer.writerow(["markets", "economy, politics"])
    out = tmp_path / "out.csv"
    assert classify(bert_bundle, source, "-o", out, "--labels-field", "labels_in", "-q") == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(json.loads(rows[0]["labels"])) == ["a, b", "sports"]
    assert sorted(json.loads(rows[1]["labels"])) == ["economy", "politics"]


BAD = [
    ({"text": "x"}, "missing labels field 'l'"),
    ({"text": "x", "l": []}, "is empty"),
    ({"text": "x", "l": " , "}, "is empty"),
    ({"text": "x", "l": ["a", "a"]}, "appears twice"),
    ({"text": "x", "l": "a, b, a"}, "appears twice"),
    ({"text": "x", "l": ["a", 3]}, "not str"),
    ({"text": "x", "l": 5}, "int, not a list"),
    ({"text": "x", "l": "[not json"}, "not a JSON list"),
]


def test_bad_label_sets_are_bad_records(bert_bundle, tmp_path, capsys):
    good = {"text": "fine", "l": ["a", "b"]}
    write_jsonl(tmp_path / "in.jsonl", [good, *[record for record, _ in BAD], good])
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels-field", "l") == 1
    assert "in.jsonl:2: missing labels field 'l'" in capsys.readouterr().err
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels-field", "l", "--skip-invalid",
                    "--overwrite", "-q") == 0
    rejects = read_jsonl(str(out) + ".rejects.jsonl")
    assert [r["line"] for r in rejects] == list(range(2, 2 + len(BAD)))
    for reject, (_, reason) in zip(rejects, BAD):
        assert reason in reject["reason"], reject
    assert len(read_jsonl(out)) == 2


def test_labels_field_excludes_fixed_labels_and_a_label_config_up_front(bert_bundle, tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "l": ["a"]}])
    with pytest.raises(SystemExit):
        classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--labels", "a", "--labels-field", "l")
    assert "not allowed with argument" in capsys.readouterr().err
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "o.json", "--labels-field", "l",
                    "--label-config") == 1
    assert "--label-config needs the labels up front" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["label-studio", "argilla"])
def test_annotation_configs_hold_every_label_seen_written_at_the_end(bert_bundle, tmp_path, fmt):
    write_jsonl(tmp_path / "in.jsonl", [{"text": f"t {i}", "l": labels} for i, labels in enumerate(SETS)])
    out = tmp_path / ("o.json" if fmt == "label-studio" else "o.jsonl")
    suffix = ".label-config.xml" if fmt == "label-studio" else ".argilla-settings.json"
    sidecar = Path(str(out) + suffix)
    sidecar.write_text("stale", encoding="utf-8")

    def stop_after_first_chunk(point, index):
        if point == "checkpointed":
            assert not sidecar.exists()  # a stale config is gone while the run goes on
            raise KeyboardInterrupt

    from zsl_onnx.classify.cli import run_command

    argv = [str(a) for a in (bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels-field", "l", "--format", fmt,
                             "--flush-every", 2, "--overwrite", "-q")]
    assert run_command(argv, fault=stop_after_first_chunk) == 130
    assert classify(*argv[:-2], "-q", "--resume") == 0
    union = list(dict.fromkeys(label for labels in SETS for label in labels))
    text = sidecar.read_text(encoding="utf-8")
    if fmt == "label-studio":
        import xml.etree.ElementTree as ET

        assert [c.get("value") for c in ET.fromstring(text).iter("Choice")] == union
    else:
        assert [o["value"] for o in json.loads(text)["questions"][0]["settings"]["options"]] == union


# -- long texts -----------------------------------------------------------------------------


def test_truncation_is_counted_and_never_printed_as_a_python_warning(bert_bundle, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "short one"}, {"text": LONG}, {"text": LONG + " more"}])
    out = tmp_path / "out.jsonl"
    done = subprocess.run([exe(), str(bert_bundle), str(tmp_path / "in.jsonl"), "-o", str(out), "--labels", LABELS,
                           "--truncation-field", "unread"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "truncated: 2 records did not fit the model" in done.stderr
    assert "Warning" not in done.stderr and "warnings.warn" not in done.stderr
    with pytest.warns(TruncationWarning) as caught:
        ZeroShotClassifier.from_pretrained(bert_bundle)([r["text"] for r in read_jsonl(out)], LABELS.split(","))
    (warning,) = caught
    assert warning.message.rows == (1, 2)
    assert [row["unread"] for row in read_jsonl(out)] == [0, *warning.message.dropped] and warning.message.dropped[0] > 100


def test_chunked_long_texts_match_the_api_and_are_not_truncated(bert_bundle, tmp_path, capsys):
    texts = ["short one", LONG]
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "out.jsonl"
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels", LABELS, "--long-text", "chunk",
                    "--max-windows", 40, "--truncation-field", "unread", "--variant", "fp32") == 0
    assert "truncated:" not in capsys.readouterr().err
    expected = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")(
        texts, LABELS.split(","), long_text="chunk", max_windows=40)
    for row, exp in zip(read_jsonl(out), expected):
        assert row["labels"] == exp["labels"] and row["unread"] == 0
        assert row["scores"] == [round(float(s), 6) for s in exp["scores"]]


def test_long_text_settings_are_in_the_fingerprint_only_when_used(bert_bundle, tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"text": f"t {i}"} for i in range(4)])
    out = tmp_path / "out.jsonl"
    state = Path(str(out) + STATE_SUFFIX)
    from zsl_onnx.classify.cli import run_command

    def stop(point, index):
        if point == "checkpointed":
            raise KeyboardInterrupt

    base = [str(a) for a in (bert_bundle, tmp_path / "in.jsonl", "-o", out, "--labels", LABELS, "--flush-every", 2, "-q")]
    assert run_command(base, fault=stop) == 130
    saved = json.loads(state.read_text())
    settings = saved["settings"]
    assert not any(name in settings for name in ("--long-text", "--max-windows", "--labels-field", "--truncation-field"))
    assert set(saved["stats"]) == {"read", "classified", "rejected", "written", "top_labels", "histogram", "first_reject"}
    assert classify(*base, "--resume", "--long-text", "chunk") == 1
    assert "--long-text: None then, 'chunk' now" in capsys.readouterr().err
    assert run_command([*base, "--overwrite", "--long-text", "chunk", "--max-windows", "3"], fault=stop) == 130
    settings = json.loads(state.read_text())["settings"]
    assert settings["--long-text"] == "chunk" and settings["--max-windows"] == 3
    assert classify(*base, "--resume", "--long-text", "chunk") == 1
    assert "--max-windows: 3 then, None now" in capsys.readouterr().err
    assert classify(*base, "--resume", "--long-text", "chunk", "--max-windows", "3") == 0


def test_max_windows_needs_chunk(bert_bundle, tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--labels", LABELS,
                    "--max-windows", 4) == 1
    assert "--max-windows needs --long-text chunk" in capsys.readouterr().err


def test_a_record_field_named_like_the_truncation_field_is_a_bad_record(bert_bundle, tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "unread": "mine"}])
    assert classify(bert_bundle, tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--labels", LABELS,
                    "--truncation-field", "unread") == 1
    assert "field 'unread' that --truncation-field would overwrite" in capsys.readouterr().err
