"""The benchmark scripts still run end to end: tiny model, tiny sizes, no timing thresholds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED, TinyModel

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = [
    pytest.mark.export,
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED / "data").is_dir(), reason=f"benchmark data not found at {SHARED / 'data'}"),
]


@pytest.fixture(scope="module")
def tiny_bert(tiny_models) -> TinyModel:
    model = tiny_models("bert")
    assert (model.bundle / "onnx" / "model_quantized.onnx").exists(), "the tiny BERT bundle should ship int8"
    return model


def run_script(name: str, *args: str | Path) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_bench_speed_measures_every_backend(tiny_bert: TinyModel, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run_script("bench_speed.py", "--model", tiny_bert.source, "--bundle", tiny_bert.bundle, "--texts", 4,
               "--rounds", 1, "--labels", "2,3", "--threads", 1, "--cold-runs", 1, "--results-dir", tmp_path)
    result = json.loads((tmp_path / "speed.json").read_text())
    rows = result["rows"]
    throughput = [r for r in rows if "texts_per_s" in r]
    backends = {r["backend"] for r in throughput}
    assert {"pipeline (batch 1, default)", "optimum ORT pipeline (fp32)", "zsl-onnx fp32", "zsl-onnx int8"} <= backends
    assert any(b.startswith("pipeline (batch ") and b.endswith(", best)") for b in backends)
    # labels 2 and 3 on news, plus short sentences and long articles at 10 labels
    assert {(r["texts"], r["labels"]) for r in throughput} == {("news", 2), ("news", 3), ("short sentence", 10), ("long article", 10)}
    assert all(r["texts_per_s"] > 0 and r["vs_pipeline_default"] > 0 for r in throughput)
    for r in throughput:
        if r["backend"] == "pipeline (batch 1, default)":
            assert r["vs_pipeline_default"] == pytest.approx(1.0)
    assert sum("token_cap_texts_per_s" in r for r in rows) == 4
    assert {r["backend"] for r in rows if "latency_p50_ms" in r} >= {"zsl-onnx int8", "pipeline (batch 1, default)"}
    assert set(result["cold_start"]) == {"pipeline", "zsl-int8"}
    assert all(v["seconds"] > 0 and v["peak_rss_mb"] > 0 for v in result["cold_start"].values())
    assert result["environment"]["versions"]["onnxruntime"]
    assert (tmp_path / "speed.md").read_text().startswith("Speed:")
    assert (tmp_path / "speed_labels.png").stat().st_size > 0 and (tmp_path / "speed_length.png").stat().st_size > 0


def test_bench_accuracy_scores_every_set(tiny_bert: TinyModel, tmp_path: Path) -> None:
    run_script("bench_accuracy.py", "--model", tiny_bert.source, "--bundle", tiny_bert.bundle, "--nli-limit", 8,
               "--zero-shot-limit", 4, "--threads", 1, "--results-dir", tmp_path)
    rows = json.loads((tmp_path / "accuracy.json").read_text())["rows"]
    assert {(r["set"], r["backend"]) for r in rows} == {
        (s, b) for s in ("SICK test", "RTE dev", "AG News (zero-shot)", "SST-2 (zero-shot)")
        for b in ("pytorch", "onnx-fp32", "onnx-int8")
    }
    for r in rows:
        assert r["n"] == (8 if r["set"] in ("SICK test", "RTE dev") else 4)
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["agreement"] <= 1.0
        if r["backend"] == "onnx-fp32":  # fp32 ONNX must reproduce PyTorch's predictions
            assert r["agreement"] == 1.0


def test_int8_error_sources_compares_rounding_and_activation_error(tiny_bert: TinyModel, tmp_path: Path) -> None:
    run_script("int8_error_sources.py", "--model", tiny_bert.source, "--sick-limit", 16, "--threads", 1,
               "--results-dir", tmp_path)
    result = json.loads((tmp_path / "int8_error_sources.json").read_text())
    assert [r["model"] for r in result["rows"]] == [
        "round to nearest", "GPTQ", "SmoothQuant", "SmoothQuant + GPTQ",
        "weights only (SmoothQuant + GPTQ weights, fp32 activations)"]
    assert result["sick_pairs"] == 16
    for r in result["rows"]:
        assert 0.0 <= r["held-out calibration"] <= 1.0 and 0.0 <= r["SICK test"] <= 1.0
    # GPTQ minimizes each layer's output error on the ranking pairs: it must beat rounding to nearest overall
    errors = result["layer_error"]
    assert errors and sum(e["gptq"] for e in errors) < sum(e["round_to_nearest"] for e in errors)


def test_bench_int8_compares_fidelity_and_paired_speed(tiny_bert: TinyModel, tmp_path: Path) -> None:
    run_script("bench_int8.py", "--bundle", tiny_bert.bundle, "--threads", 1, "--sick-limit", 8, "--news", 6,
               "--chunk", 3, "--repeats", 2, "--compare", tiny_bert.bundle, "--results-dir", tmp_path)
    rows = {r["backend"]: r for r in json.loads((tmp_path / "int8.json").read_text())["rows"]}
    other = f"int8 ({tiny_bert.bundle.name})"  # --compare: another export's int8 in the same run
    assert set(rows) == {"fp32", "int8 (per-row, guarded)", "int8 (onnxruntime dynamic, default)", other}
    assert rows[other]["sick_agreement"] == rows["int8 (per-row, guarded)"]["sick_agreement"]  # the same file
    assert rows["fp32"]["sick_mean_abs_logit_diff"] == 0.0 < rows["int8 (per-row, guarded)"]["sick_mean_abs_logit_diff"]
    assert rows["int8 (per-row, guarded)"]["alone_vs_batched_max_abs_diff"] == 0.0  # bitwise batch-independent
    for row in rows.values():
        assert row["passes"] == 2 * 2  # 6 texts in chunks of 3, twice each
        assert row["median_texts_per_s"] > 0 and row["ratio_median"] > 0


def test_kernel_portability_dumps_logits_and_compares_two_machines(tiny_bert: TinyModel, tmp_path: Path) -> None:
    """Two dumps on one machine compare as identical; the table names what each process saw."""
    for name, extra in (("a.npz", ["--fp32"]), ("b.npz", [])):
        run_script("kernel_portability.py", "dump", "--bundle", tiny_bert.bundle, "--sick-limit", 6, "--threads", 1,
                   "-o", tmp_path / name, *extra)
    run_script("kernel_portability.py", "compare", tmp_path / "a.npz", tmp_path / "b.npz", "--results-dir", tmp_path)
    data = json.loads((tmp_path / "kernel_portability.json").read_text())
    rows = {r["backend"]: r for r in data["rows"]}
    assert set(rows) == {"int8 per-row", "int8 quantize_dynamic"}
    for row in rows.values():
        assert row["top1_same_on_both"] == 1.0 and row["max_abs_logit_diff"] == 0.0
        assert row["agreement_with_fp32_reference"] == row["agreement_with_fp32_other"]
    assert data["reference"]["isa_seen"] == data["other"]["isa_seen"] and data["reference"]["pairs"] > 6


def test_paired_timings_runs_every_chunk_through_every_runner_in_rotating_order() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from common import paired_timings

    calls: list[tuple[str, tuple[str, ...]]] = []
    runners = {name: (lambda part, name=name: calls.append((name, tuple(part)))) for name in ("a", "b", "c")}
    result = paired_timings(runners, [f"t{i}" for i in range(5)], chunk=2, repeats=2)
    timed = calls[3:]  # after one warm-up call each
    assert len(timed) == 3 * 3 * 2  # 3 chunks (2, 2, 1 texts) x 3 runners x 2 repeats
    passes = [timed[i : i + 3] for i in range(0, len(timed), 3)]
    assert all(len({part for _, part in p}) == 1 for p in passes), "a chunk goes through every runner in a row"
    assert [p[0][0] for p in passes[:3]] == ["a", "b", "c"], "the first runner rotates"
    assert result["a"]["ratio_median"] == 1.0 and all(r["passes"] == 6 for r in result.values())


def test_results_folders_are_named_by_cpu_class() -> None:
    """Results land per CPU line and int8 kernels, so runs on different kernels never mix."""
    sys.path.insert(0, str(BENCHMARKS))
    from common import cpu_class

    assert cpu_class("AMD EPYC", ["avx2", "avx512_vnni"]) == "amd-epyc-avx512vnni"
    assert cpu_class("Intel(R) Xeon(R) Processor", ["avx2", "avx512_vnni", "avx_vnni", "amx_int8"]) == "intel-xeon-amx"
    assert cpu_class("Intel(R) Xeon(R) Processor", ["AVX2", "FMA3", "AVX512F", "AVX512VNNI", "AVX512_SPR"]) == "intel-xeon-amx"
    assert cpu_class("AMD EPYC", ["avx2", "avx512_vnni"], mask="avx2") == "amd-epyc-avx2-kernels"
    assert cpu_class("Intel(R) Core(TM) i7-8700 CPU", ["avx2"]) == "intel-r-core-tm-i7-8700-cpu-avx2"
    assert cpu_class("", []) == "unknown-cpu-no-avx2"


def test_bench_serve_measures_every_mode(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    bundle = Path(__file__).resolve().parent / "data" / "tiny-bert"
    run_script("bench_serve.py", "--bundle", bundle, "--requests", 8, "--clients", "1,4", "--labels", 5,
               "--threads", 1, "--results-dir", tmp_path)
    result = json.loads((tmp_path / "serve.json").read_text())
    modes = {(row["mode"], row["clients"]) for row in result["rows"]}
    assert modes == {("in process, one text at a time", 1), ("in process, one batched call", 1),
                     ("zsl-serve, dynamic batching", 1), ("zsl-serve, dynamic batching", 4),
                     ("zsl-serve, batching off", 1), ("zsl-serve, batching off", 4)}
    assert all(row["requests_per_s"] > 0 for row in result["rows"]) and result["environment"]["cpu"]


def test_bench_long_text_aggregation_combines_one_scoring_of_the_windows(tmp_path: Path) -> None:
    from embedding_models import build_sentence_transformer
    from zsl_onnx_export import export_bundle

    source = build_sentence_transformer("bert", tmp_path / "st")
    export_bundle(source, tmp_path / "embedding")
    nli = Path(__file__).resolve().parent / "data" / "tiny-bert"  # 128 tokens: 6 items make several windows
    run_script("bench_long_text.py", "aggregation", "--bundle", tmp_path / "embedding", "--nli-bundle", nli,
               "--items", 6, "--docs", 3, "--nli-docs", 3, "--threads", 1, "--results-dir", tmp_path)
    for kind, single, multi in (("embedding", "mean of window vectors", "max of window scores"),
                                ("nli", "mean of window scores", "max of window scores")):
        entry = json.loads((tmp_path / f"aggregation_{kind}.json").read_text())[kind]
        assert set(entry["windows_per_document"]) == {"one class", "other opening", "A then B", "B then A"}
        assert all(counts["min"] > 1 for counts in entry["windows_per_document"].values())
        assert entry["shipped_check_max_abs_diff"] < 1e-5  # the marked combination is long_text="chunk" itself
        rows = entry["single_label"]["one class"]
        assert f"{single} (shipped)" in rows and {"truncate", "first window", "max of window scores"} <= set(rows)
        for pairs in entry["multi_label"].values():
            assert f"{multi} (shipped)" in pairs
            assert all(0 <= v["exact_top2"] <= v["top2_recall"] <= 1 for v in pairs.values())
        assert (tmp_path / f"aggregation_{kind}.md").read_text().count("(shipped)") == 2


def test_bench_replica_export_times_each_step_of_a_guarded_export(tmp_path: Path) -> None:
    """The tiny size stands in for a replica: each step timed with its memory and disk, the bundle deleted."""
    work = tmp_path / "work"
    run_script("bench_replica_export.py", "--replica", "tiny-bert", "--threads", 1, "--work-dir", work,
               "--results-dir", tmp_path)
    result = json.loads((tmp_path / "tiny-bert.json").read_text())
    export = result["export"]
    assert export["returncode"] == 0 and "--min-agreement" not in result["command"]
    steps = export["steps"]
    assert [s["name"] for s in steps] == ["start", "load", "export", "validate", "quantize", "fp16", "write"]
    assert all(s["end_s"] >= s["start_s"] for s in steps) and steps[-1]["end_s"] == export["seconds"]
    assert all(s["peak_rss_kib"] > 0 for s in steps[1:])
    assert steps[0]["end_disk_bytes"] == 0 < steps[-1]["end_disk_bytes"]  # nothing before the export; the bundle after
    times = [line["s"] for line in export["lines"]]
    assert times == sorted(times) and any("calibration pairs, min agreement 99.0%" in line["line"]
                                          for line in export["lines"])  # the guard at its defaults
    guard = result["guard"]
    assert guard["candidates_tried"], "the guard's candidate lines should be parsed"
    if guard["int8"]:
        assert guard["agreement"] >= guard["min_agreement"] == 0.99
    assert not (work / "tiny-bert" / "export").exists() and (work / "tiny-bert" / "model" / "config.json").is_file()
    assert (tmp_path / "tiny-bert.md").read_text().startswith("Seed-size export: tiny-bert")
