"""Shared helpers for the benchmark scripts: datasets from ../shared, machine info, result files."""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURE = SHARED / "fixtures" / "minilm-l6-sick-nli"
RESULTS = REPO / "benchmarks" / "results"
# The random-weight model factory lives with the tests (tests/tiny_models.py), out of the
# wheel; the benchmarks import it from there for tiny models and full-size replicas.
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))


@dataclass(frozen=True)
class NliSet:
    name: str
    premises: list[str]
    hypotheses: list[str]
    gold: np.ndarray  # 0 = entailment, 1 = neutral / not_entailment, 2 = contradiction
    binary: bool  # scored as entailment vs not


def sick_test() -> NliSet:
    classes = {"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}
    rows = _tsv(SHARED / "data" / "sick" / "SICK.txt")
    rows = [r for r in rows if r["SemEval_set"] == "TEST"]
    return NliSet(
        "SICK test",
        [r["sentence_A"] for r in rows],
        [r["sentence_B"] for r in rows],
        np.array([classes[r["entailment_label"]] for r in rows]),
        binary=False,
    )


def rte_dev() -> NliSet:
    rows = _tsv(SHARED / "data" / "rte" / "dev.tsv")
    return NliSet(
        "RTE dev",
        [r["sentence1"] for r in rows],
        [r["sentence2"] for r in rows],
        np.array([int(r["label"]) for r in rows]),
        binary=True,
    )


def ag_news(limit: int | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    """AG News test texts (title + description), gold topic index, and the topic labels."""
    with (SHARED / "data" / "ag_news" / "test.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    texts = [f"{r['title']}. {r['description']}".replace("\\", " ") for r in rows]
    return texts, np.array([int(r["label"]) - 1 for r in rows]), ["world", "sports", "business", "science and technology"]


def sst2_dev(limit: int | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    rows = _tsv(SHARED / "data" / "sst2" / "dev.tsv")[:limit]
    return [r["sentence"].strip() for r in rows], np.array([int(r["label"]) for r in rows]), ["negative", "positive"]


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def nli_predictions(logits: np.ndarray, entailment: int, binary: bool, class_map: Sequence[int]) -> np.ndarray:
    """Map model class ids to the dataset's ids; binary sets ask only 'entailment or not'."""
    top = logits.argmax(axis=1)
    if binary:
        return np.where(top == entailment, 0, 1)
    return np.array([class_map[i] for i in top])


def macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    scores = []
    for label in np.unique(gold):
        tp = np.sum((pred == label) & (gold == label))
        fp = np.sum((pred == label) & (gold != label))
        fn = np.sum((pred != label) & (gold == label))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))



ISA_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")  # the ones int8 GEMM speed depends on


def cpu_info() -> tuple[str, list[str]]:
    """The CPU model name and which of :data:`ISA_FLAGS` it has (from /proc/cpuinfo)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return platform.processor() or "unknown", []
    lines = cpuinfo.read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return model, [flag for flag in ISA_FLAGS if flag in flags]


def isa_mask() -> str | None:
    """"avx2" when onnxruntime in this process runs under ``avx2_kernels.py`` (it sees no AVX512,
    VNNI or AMX), else None. The mask must be preloaded *and* have answered onnxruntime's CPUID:
    a preloaded mask with the real onnxruntime imported counts as no mask."""
    import ctypes

    import onnxruntime  # noqa: F401  (its CPUID runs when it loads)

    try:
        process = ctypes.CDLL(None)
        name = ctypes.cast(process.zsl_cpuid_mask, ctypes.c_char_p).value
        traps = ctypes.c_ulong.in_dll(process, "zsl_cpuid_mask_traps").value
    except (AttributeError, OSError, ValueError):
        return None
    return name.decode() if name and traps > 0 else None


def cpu_class(cpu: str, isa: Sequence[str], mask: str | None = None) -> str:
    """A results folder name for a CPU: its line and the int8 kernels onnxruntime runs on it.

    int8 speed depends on those kernels (AVX2, AVX512-VNNI, AMX) more than on the model name, so
    results are kept per class and compared only within one: ``amd-epyc-avx512vnni``,
    ``intel-xeon-amx``, ``amd-epyc-avx2-kernels`` (under ``avx2_kernels.py``). ``isa`` takes
    :data:`ISA_FLAGS` names or numpy's feature names (``AVX512_VNNI``, ``AVX512_SPR``).
    """
    lowered = cpu.lower()
    if "epyc" in lowered:
        line = "amd-epyc"
    elif "xeon" in lowered:
        line = "intel-xeon"
    else:
        line = re.sub(r"[^a-z0-9]+", "-", lowered).strip("-")[:40] or "unknown-cpu"
    flags = {flag.lower().replace("_", "") for flag in isa}
    if mask:
        kernels = f"{mask}-kernels"
    elif flags & {"amxint8", "avx512spr"}:
        kernels = "amx"
    elif "avx512vnni" in flags:
        kernels = "avx512vnni"
    elif "avxvnni" in flags:
        kernels = "avxvnni"
    elif "avx2" in flags:
        kernels = "avx2"
    else:
        kernels = "no-avx2"
    return f"{line}-{kernels}"


RESULTS_DIR_HELP = "default: benchmarks/results/{}/<CPU class of this machine, e.g. amd-epyc-avx512vnni>"


def machine_results_dir(benchmark: str) -> Path:
    """``benchmarks/results/<benchmark>/<cpu class>`` for this machine, so a run never lands
    beside (or over) results measured on another kind of CPU."""
    cpu, isa = cpu_info()
    return RESULTS / benchmark / cpu_class(cpu, isa, isa_mask())


def environment(threads: int | str) -> dict[str, Any]:
    versions = {}
    for name in ("zsl-onnx", "onnxruntime", "tokenizers", "torch", "transformers", "optimum-onnx"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    cpu, isa = cpu_info()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "isa": isa,
        "onnxruntime_isa_mask": isa_mask(),
        "cores": os.cpu_count(),
        "threads": threads,
        "versions": versions,
    }


def machine_line(env: dict[str, Any]) -> str:
    """One line naming the machine, for the foot of every results table."""
    isa = ", ".join(env.get("isa") or []) or "none of " + ", ".join(ISA_FLAGS)
    line = f"Machine: {env['cpu']} ({isa}), {env['cores']} cores, {env['threads']} threads, Python {env['python']}."
    if env.get("onnxruntime_isa_mask"):
        line += (f" onnxruntime ran its {env['onnxruntime_isa_mask'].upper()} kernels: CPUID masked by "
                 "benchmarks/avx2_kernels.py (no AVX512, VNNI or AMX).")
    return line


def paired_timings(
    runners: dict[str, Callable[[list[str]], Any]], texts: list[str], chunk: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Speed of each runner on ``texts``, robust to a machine whose speed comes and goes.

    On shared or virtual machines other tenants slow a pass by up to 2-3x for seconds at a
    time, so long passes compare one backend's quiet phase with another's busy one. Here the
    texts are cut into chunks of ``chunk``; every chunk runs through every runner in turn
    (order rotating), ``repeats`` times. Per runner: texts/s from each chunk's median pass
    (``median_texts_per_s``) and from each chunk's fastest pass (``best_texts_per_s``: the
    machine undisturbed, as ``timeit`` advises); against the first runner: the median and
    quartiles of the per-pass ratios of neighbouring passes (``ratio_median``, ``ratio_q1``,
    ``ratio_q3``) and the ratio of best times (``ratio_best``).
    """
    names = list(runners)
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    for name in names:  # warm-up: first-run allocations stay out of the timings
        runners[name](chunks[0][:2])
    times: dict[str, list[list[float]]] = {name: [[] for _ in chunks] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(repeats):
        for index, part in enumerate(chunks):
            order = names[turn % len(names):] + names[: turn % len(names)]
            turn += 1
            took = {}
            for name in order:
                start = time.perf_counter()
                runners[name](part)
                took[name] = time.perf_counter() - start
                times[name][index].append(took[name])
            for name in names:
                ratios[name].append(took[names[0]] / took[name])
    best = {name: sum(min(per_chunk) for per_chunk in times[name]) for name in names}
    result = {}
    for name in names:
        q1, median, q3 = np.quantile(ratios[name], [0.25, 0.5, 0.75])
        result[name] = {
            "median_texts_per_s": len(texts) / sum(statistics.median(per_chunk) for per_chunk in times[name]),
            "best_texts_per_s": len(texts) / best[name],
            "ratio_median": float(median), "ratio_q1": float(q1), "ratio_q3": float(q3),
            "ratio_best": best[names[0]] / best[name],
            "passes": sum(len(per_chunk) for per_chunk in times[name]),
        }
    return result


def write_results(stem: str, data: dict[str, Any], markdown: str, results_dir: Path) -> None:
    if "environment" in data:
        markdown = f"{markdown}\n\n{machine_line(data['environment'])}"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (results_dir / f"{stem}.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)
    print(f"\nwrote {results_dir / (stem + '.json')} and {results_dir / (stem + '.md')}")
