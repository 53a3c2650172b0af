"""The int8 accuracy guard: try quantization candidates, keep the first that agrees with fp32.

Order: the base candidates (every weight in int8, fastest and smallest first); if none
passes, every quantizable node is quantized alone and ranked by how far it moves the logits
on the ranking pairs, and the fastest base candidate is retried with the top 1, 2, 4, 8, ...
nodes kept in fp32, up to half of them; after the first pass, bisection finds the fewest
fp32 nodes that still pass. Fewer fp32 nodes means smaller and faster, so that candidate is
the one kept. If that base never passes, the next base climbs its own ladder. Pass/fail is top-1 agreement with the fp32 model on the held-out pairs, which
never influence the node ranking.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl_onnx.internals import make_batches
from zsl_onnx.internals import read_json
from zsl_onnx.internals import LogitsSession, create_session
from zsl_onnx.internals import PairTokenizer

from ._calibration import CalibrationSet
from ._graph import external_files, size_with_data
from ._quantize import BASE_CANDIDATES, QuantConfig, quantizable_nodes, quantize

Progress = Callable[[str], None]


class PairRunner:
    """Tokenizes the calibration pairs once, then runs any ONNX file of the bundle on them."""

    def __init__(self, bundle_dir: Path, calibration: CalibrationSet, *, max_length: int, threads: int | None) -> None:
        tokenizer = PairTokenizer.from_file(
            bundle_dir / "tokenizer.json",
            tokenizer_config=read_json(bundle_dir / "tokenizer_config.json"),
            config=read_json(bundle_dir / "config.json"),
            max_length=max_length,
        )
        premises = tokenizer.encode_premises(list(calibration.premises))
        hypotheses = tokenizer.encode_hypotheses(list(calibration.hypotheses))
        self._encodings = [tokenizer.join(p, h) for p, h in zip(premises, hypotheses)]
        self._pad_id = tokenizer.pad_id
        self._threads = threads

    def speeds(self, model_paths: Sequence[Path], rounds: int = 3) -> list[float]:
        """Median pairs/s of each model over ``rounds`` passes taken in turn (interleaved), so
        a slow moment of the machine hits every model alike."""
        batches = list(make_batches(self._encodings, batch_size=32, pad_id=self._pad_id))
        sessions = [LogitsSession(create_session(path, threads=self._threads)) for path in model_paths]
        timings: list[list[float]] = [[] for _ in sessions]
        for session in sessions:
            session.run(batches[0])
        for _ in range(rounds):
            for session, times in zip(sessions, timings):
                start = time.perf_counter()
                for batch in batches:
                    session.run(batch)
                times.append(time.perf_counter() - start)
        return [len(self._encodings) / float(np.median(times)) for times in timings]

    def logits(self, model_path: Path, subset: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """Logits for all pairs (or ``subset``, in its order), and pairs/s after a warm-up batch."""
        encodings = self._encodings if subset is None else [self._encodings[i] for i in subset]
        batches = list(make_batches(encodings, batch_size=32, pad_id=self._pad_id))
        session = LogitsSession(create_session(model_path, threads=self._threads))
        session.run(batches[0])
        out: np.ndarray | None = None
        start = time.perf_counter()
        for batch in batches:
            logits = session.run(batch)
            if out is None:
                out = np.empty((len(encodings), logits.shape[1]), dtype=np.float32)
            out[batch.positions] = logits
        seconds = time.perf_counter() - start
        assert out is not None
        return out, len(encodings) / seconds


@dataclass(frozen=True)
class CandidateResult:
    config: QuantConfig
    heldout_agreement: float
    ranking_agreement: float
    max_abs_diff: float
    size: int
    pairs_per_s: float
    speedup: float  # vs fp32 on the same pairs; one pass, so +-20%: a guide, not a benchmark
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "heldout_agreement": round(self.heldout_agreement, 6),
            "ranking_agreement": round(self.ranking_agreement, 6),
            "max_abs_logit_diff": round(self.max_abs_diff, 6),
            "size": self.size,
            "pairs_per_s": round(self.pairs_per_s, 1),
            "speedup_vs_fp32": round(self.speedup, 3),
            "passed": self.passed,
            "excluded_nodes": len(self.config.nodes_to_exclude),
        }


@dataclass
class GuardReport:
    min_agreement: float
    calibration: dict[str, object]
    graph: dict[str, Any]
    fp32_size: int
    fp32_pairs_per_s: float
    candidates: list[CandidateResult] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)
    chosen: CandidateResult | None = None
    kept_lossy: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "min_agreement": self.min_agreement,
            "reference": "ONNX fp32 model, top-1 on held-out calibration pairs",
            "calibration": self.calibration,
            "graph": self.graph,
            "fp32": {"size": self.fp32_size, "pairs_per_s": round(self.fp32_pairs_per_s, 1)},
            "candidates": [c.to_json() for c in self.candidates],
            "chosen": self.chosen.config.name if self.chosen else None,
            "kept_lossy": self.kept_lossy,
            "most_sensitive_nodes": [{"node": n, "mean_abs_logit_diff": round(s, 6)} for n, s in self.sensitivity[:16]],
        }

    def table(self) -> str:
        rows = ["candidate                          agreement  size/fp32  speed/fp32  result"]
        for c in self.candidates:
            verdict = "chosen" if c is self.chosen else ("pass" if c.passed else "fail")
            rows.append(
                f"{c.config.name:<34} {c.heldout_agreement:>9.2%}  {c.size / self.fp32_size:>9.0%}  "
                f"{c.speedup:>9.2f}x  {verdict}"
            )
        return "\n".join(rows)


def search_int8(
    graph: Path,
    target: Path,
    *,
    runner: PairRunner,
    calibration: CalibrationSet,
    reference: np.ndarray,
    fp32_size: int,
    fp32_pairs_per_s: float,
    min_agreement: float,
    graph_info: dict[str, Any],
    external_data: bool,
    keep_lossy: bool = False,
    candidates: Sequence[QuantConfig] = BASE_CANDIDATES,
    progress: Progress | None = None,
) -> GuardReport:
    """Quantize ``graph`` candidate by candidate; the chosen one ends up at ``target``.

    ``reference`` holds the fp32 model's logits on all calibration pairs.
    """
    say = progress or (lambda message: None)
    report = GuardReport(min_agreement, calibration.describe(), graph_info, fp32_size, fp32_pairs_per_s)
    work = target.parent / ".guard"
    work.mkdir(exist_ok=True)
    files: dict[int, Path] = {}

    def attempt(config: QuantConfig) -> CandidateResult:
        path = work / f"candidate-{len(report.candidates)}.onnx"
        quantize(graph, path, config, external_data=external_data)
        logits, pps = runner.logits(path)
        result = _score(config, logits, reference, calibration, path, pps, fp32_pairs_per_s, min_agreement)
        report.candidates.append(result)
        files[id(result)] = path
        _prune(report.candidates, files)
        say(f"      {config.name}: agreement {result.heldout_agreement:.2%}, "
            f"{result.size / fp32_size:.0%} of fp32 size, {result.speedup:.2f}x fp32 speed")
        return result

    def choose(result: CandidateResult, *, lossy: bool = False) -> GuardReport:
        report.chosen, report.kept_lossy = result, lossy
        _move(files[id(result)], target)
        return report

    try:
        for config in candidates:
            if (result := attempt(config)).passed:
                return choose(result)
        # Base candidates come fastest first, and their kernels differ more in speed (s8 vs u8
        # weights on AVX2) than a few fp32 nodes do: climb the ladder on each base in turn.
        for start in candidates:
            ordered = _rank_nodes(graph, start, runner, calibration, reference, report, work, external_data, say)
            failed = 0
            for count in _ladder(len(ordered)):
                result = attempt(start.excluding(ordered[:count]))
                if result.passed:
                    # Fewest fp32 nodes that still pass: bisect between the last failure and here.
                    low, high, best = failed, count, result
                    while high - low > 1:
                        middle = (low + high) // 2
                        trial = attempt(start.excluding(ordered[:middle]))
                        low, high, best = (low, middle, trial) if trial.passed else (middle, high, best)
                    return choose(best)
                failed = count
        if keep_lossy and report.candidates:
            return choose(max(report.candidates, key=lambda c: c.heldout_agreement), lossy=True)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prune(results: list[CandidateResult], files: dict[int, Path]) -> None:
    """Delete candidate files that can no longer be chosen (each is a full model copy): keep
    the passing ones and the most faithful one (for --keep-lossy-int8)."""
    best = max(results, key=lambda c: c.heldout_agreement)
    for result in results:
        path = files.get(id(result))
        if path is not None and result is not best and not result.passed:
            for leftover in [path, *external_files(path)]:
                leftover.unlink(missing_ok=True)
            del files[id(result)]


def _rank_nodes(
    graph: Path,
    config: QuantConfig,
    runner: PairRunner,
    calibration: CalibrationSet,
    reference: np.ndarray,
    report: GuardReport,
    work: Path,
    external_data: bool,
    say: Progress,
) -> list[str]:
    """Quantize each node alone; most sensitive first (mean |logit diff| on the ranking pairs)."""
    nodes = quantizable_nodes(graph, config.op_types)
    say(f"      no base candidate passed; measuring each of {len(nodes)} nodes alone ({config.name})")
    ranking = calibration.ranking
    report.sensitivity = []  # the manifest keeps the ranking of the base the ladder ends on
    for node in nodes:
        path = work / "one-node.onnx"
        quantize(graph, path, config, external_data=external_data, only_nodes=[node])
        logits, _ = runner.logits(path, subset=ranking)
        report.sensitivity.append((node, float(np.abs(logits - reference[ranking]).mean())))
    report.sensitivity.sort(key=lambda item: item[1], reverse=True)
    return [node for node, _ in report.sensitivity]


def _ladder(nodes: int) -> list[int]:
    """How many nodes to keep in fp32: 1, 2, 4, 8, ... and exactly half last."""
    half = nodes // 2
    return sorted({min(2**i, half) for i in range(half.bit_length() + 1)} - {0})


def _score(
    config: QuantConfig,
    logits: np.ndarray,
    reference: np.ndarray,
    calibration: CalibrationSet,
    path: Path,
    pps: float,
    fp32_pps: float,
    min_agreement: float,
) -> CandidateResult:
    agree = np.argmax(logits, axis=1) == np.argmax(reference, axis=1)
    heldout = float(agree[calibration.heldout].mean())
    size = size_with_data(path)
    return CandidateResult(
        config=config,
        heldout_agreement=heldout,
        ranking_agreement=float(agree[calibration.ranking].mean()),
        max_abs_diff=float(np.abs(logits - reference).max()),
        size=size,
        pairs_per_s=pps,
        speedup=pps / fp32_pps,
        passed=heldout >= min_agreement,
    )


def _move(path: Path, target: Path) -> None:
    if not external_files(path):
        shutil.move(str(path), target)
        return
    import onnx  # graphs over 2 GB: re-save so the weights file is named after the target

    model = onnx.load(str(path))
    onnx.save(model, str(target), save_as_external_data=True, location=target.name + "_data")
