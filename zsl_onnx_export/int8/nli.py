"""The NLI scorer of the int8 search: a candidate's top-1 agreement with fp32 on calibration pairs.

Every candidate quantizes each activation row on its own (``rowquant``): batch-independent,
and with AVX2-safe weights. The calibration pairs are split once (``calibration``): a fixed
third, the *ranking* pairs, gives the activation statistics and measures single changes (one
MatMul, one calibrated scale) by the mean |logit diff| from fp32; the other two thirds, the
*held-out* pairs, decide pass/fail by top-1 agreement with fp32 and never influence weights or
rankings. The back-off keeps the top 1, 2, 4, 8, ... MatMuls in fp32, up to half of them, and
after the first pass bisects to the fewest that still pass (``NLI_LADDER``).

Candidates run through the runtime's own inference loop (``run_encodings``, with the
classifier's batch size and CPU token cap), so the guard measures what users get. Speeds come
from interleaved repeated passes of fp32 and the candidate, and can be switched off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from zsl_onnx.internals import (
    CPU_MAX_BATCH_TOKENS,
    DEFAULT_BATCH_SIZE,
    LogitsSession,
    PairTokenizer,
    create_session,
    read_json,
    run_encodings,
)

from .calibration import CalibrationSet
from .candidates import BASE_CANDIDATES, QuantConfig, needs_external_data, save_model
from .search import STATIC_TOLERANCE, CandidateResult, GuardReport, Ladder, Score, delete_graph, search
from .sensitivity import END_TO_END, ONE_PASS
from .stats import ActivationStats, collect_stats, run_probe

__all__ = ["NLI_LADDER", "SPEED_PAIRS", "NliScorer", "PairRunner", "search_int8"]

Progress = Callable[[str], None]
SPEED_PAIRS = 256  # pairs per timed pass: enough for a stable median, few enough for big models


class PairRunner:
    """Tokenizes the calibration pairs once, then runs any ONNX file on them through the
    runtime's inference loop (same batch size and CPU token cap as the classifier)."""

    def __init__(
        self,
        bundle_dir: Path,
        calibration: CalibrationSet,
        *,
        max_length: int,
        threads: int | None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int | None = CPU_MAX_BATCH_TOKENS,
    ) -> None:
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
        self._batch_size = batch_size
        self._max_tokens = max_tokens

    def _run(self, session: LogitsSession, encodings: Sequence[Any]) -> np.ndarray:
        return run_encodings(
            encodings, session.run, batch_size=self._batch_size, pad_id=self._pad_id, max_tokens=self._max_tokens
        )

    def _select(self, subset: np.ndarray | None) -> list[Any]:
        return list(self._encodings) if subset is None else [self._encodings[i] for i in subset]

    def logits(self, model_path: Path, subset: np.ndarray | None = None) -> np.ndarray:
        """Logits for all pairs (or ``subset``, in its order)."""
        session = LogitsSession(create_session(model_path, threads=self._threads))
        return self._run(session, self._select(subset))

    def speeds(self, model_paths: Sequence[Path], rounds: int = 3, pairs: int | None = None) -> list[float]:
        """Median pairs/s of each model over ``rounds`` passes taken in turn (interleaved), so
        a slow moment of the machine hits every model alike. ``pairs``: the first N only."""
        encodings = self._encodings[:pairs] if pairs else self._encodings
        sessions = [LogitsSession(create_session(path, threads=self._threads)) for path in model_paths]
        timings: list[list[float]] = [[] for _ in sessions]
        for session in sessions:  # warm-up: first runs allocate and pack weights
            self._run(session, encodings[: self._batch_size])
        for _ in range(rounds):
            for session, times in zip(sessions, timings):
                start = time.perf_counter()
                self._run(session, encodings)
                times.append(time.perf_counter() - start)
        return [len(encodings) / float(np.median(times)) for times in timings]

    def stats(
        self, model: Any, activations: Sequence[str], subset: np.ndarray, work: Path, *, external_data: bool
    ) -> dict[str, ActivationStats]:
        """fp32 statistics of ``activations`` of ``model`` (onnx.ModelProto) on ``subset``."""
        try:
            return collect_stats(
                model, activations, self._select(subset), make_session=self._probe_session(work, external_data),
                pad_id=self._pad_id, batch_size=self._batch_size, max_tokens=self._max_tokens,
            )
        finally:
            delete_graph(work / "probe.onnx")

    def probe(self, model: Any, outputs: Sequence[str], subset: np.ndarray, work: Path,
              consume: Callable[[str, np.ndarray], None], *, external_data: bool) -> None:
        """Run ``model`` on ``subset`` with ``outputs`` exposed (``stats.run_probe``)."""
        try:
            run_probe(model, outputs, self._select(subset), consume,
                      make_session=self._probe_session(work, external_data),
                      pad_id=self._pad_id, batch_size=self._batch_size, max_tokens=self._max_tokens)
        finally:
            delete_graph(work / "probe.onnx")  # a shadow graph's file is larger than the fp32 one

    def _probe_session(self, work: Path, external_data: bool) -> Callable[[Any], Any]:
        def open_probe(probe: Any) -> Any:
            path = work / "probe.onnx"
            delete_graph(path)  # onnx appends to an existing external-data file
            save_model(probe, path, external_data=needs_external_data(probe, external_data))
            return create_session(path, threads=self._threads)

        return open_probe


def doubling_to_half(nodes: int) -> list[int]:
    """How many MatMuls to keep in fp32: 1, 2, 4, 8, ... and exactly half last."""
    half = nodes // 2
    return sorted({min(2**i, half) for i in range(half.bit_length() + 1)} - {0})


NLI_LADDER = Ladder(doubling_to_half, bisect=True)
# What a MatMul's sensitivity is, by how the search ranked them (see search._rank_nodes).
_RANKING_MEASURE = {None: "error", END_TO_END: "mean_abs_logit_diff", ONE_PASS: "relative_output_error"}


class NliFormat:
    """The guard record of an NLI bundle's manifest."""

    def candidate_json(self, result: CandidateResult) -> dict[str, Any]:
        return {
            "name": result.config.name,
            "heldout_agreement": round(result.heldout_agreement, 6),
            "ranking_agreement": round(result.measures["ranking_agreement"], 6),
            "max_abs_logit_diff": round(result.measures["max_abs_logit_diff"], 6),
            "size": result.size,
            "speedup_vs_fp32": None if result.speedup is None else round(result.speedup, 3),
            "passed": result.passed,
            "fp32_nodes": list(result.config.nodes_to_exclude),
        }

    def report_json(self, report: GuardReport) -> dict[str, Any]:
        return {
            "min_agreement": report.min_agreement,
            "reference": "ONNX fp32 model, top-1 on held-out calibration pairs",
            "calibration": report.context["calibration"],
            "graph": {"weight_matmuls": report.weight_matmuls},
            "fp32": {"size": report.fp32_size},
            "speed_measurement": f"chosen candidate: first {SPEED_PAIRS} calibration pairs, median of 3 interleaved passes with fp32",
            "candidates": [self.candidate_json(c) for c in report.candidates],
            "chosen": report.chosen.config.name if report.chosen else None,
            "kept_lossy": report.kept_lossy,
            "ranking": report.ranking,
            "most_sensitive_nodes": [{"node": n, _RANKING_MEASURE[report.ranking]: float(f"{s:.6g}")}
                                     for n, s in report.sensitivity[:16]],
            "static_selection": None if report.static_base_error is None else {
                "tolerance": STATIC_TOLERANCE,
                "base_mean_abs_logit_diff": round(report.static_base_error, 6),
                "alone": [{"activation": a, "mean_abs_logit_diff": round(s, 6)} for a, s in report.static_sensitivity],
            },
        }


class NliScorer:
    """Scores candidates by top-1 agreement with fp32's ``reference`` logits on the held-out
    pairs; single changes by the mean |logit diff| on the ranking pairs."""

    ladder = NLI_LADDER
    rank_per_weight = False
    format = NliFormat()

    def __init__(self, runner: PairRunner, calibration: CalibrationSet, reference: np.ndarray, *,
                 external_data: bool) -> None:
        self._runner, self._calibration, self._reference = runner, calibration, reference
        self._external_data = external_data
        self.statistics_source = f"{len(calibration.ranking)} ranking pairs"

    def statistics(self, model: Any, activations: Sequence[str], work: Path) -> dict[str, ActivationStats]:
        return self._runner.stats(model, activations, self._calibration.ranking, work,
                                  external_data=self._external_data)

    def probe(self, model: Any, outputs: Sequence[str], work: Path, consume: Callable[[str, np.ndarray], None]) -> None:
        self._runner.probe(model, outputs, self._calibration.ranking, work, consume, external_data=self._external_data)

    def score(self, path: Path) -> Score:
        logits = self._runner.logits(path)
        agree = np.argmax(logits, axis=1) == np.argmax(self._reference, axis=1)
        return Score(
            heldout_agreement=float(agree[self._calibration.heldout].mean()),
            measures={"ranking_agreement": float(agree[self._calibration.ranking].mean()),
                      "max_abs_logit_diff": float(np.abs(logits - self._reference).max())},
        )

    def change_error(self, path: Path) -> float:
        ranking = self._calibration.ranking
        return float(np.abs(self._runner.logits(path, subset=ranking) - self._reference[ranking]).mean())

    def summary(self, result: CandidateResult, report: GuardReport) -> str:
        return (f"      {result.config.name}: agreement {result.heldout_agreement:.2%}, "
                f"{result.size / report.fp32_size:.0%} of fp32 size"
                + ("" if result.speedup is None else f", {result.speedup:.2f}x fp32 speed"))


def search_int8(
    graph: Path,
    target: Path,
    *,
    runner: PairRunner,
    calibration: CalibrationSet,
    reference: np.ndarray,
    fp32_size: int,
    min_agreement: float,
    external_data: bool,
    keep_lossy: bool = False,
    candidates: Sequence[QuantConfig] = BASE_CANDIDATES,
    measure_speed: bool = True,
    progress: Progress | None = None,
) -> GuardReport:
    """The int8 search (``search``) of an NLI graph; the chosen candidate ends up at ``target``.

    ``reference`` holds the fp32 model's logits on all calibration pairs. ``measure_speed``
    times the chosen candidate against fp32 (interleaved passes over SPEED_PAIRS pairs); the
    other candidates are not timed: on XLM-R large each timing took minutes.
    """
    scorer = NliScorer(runner, calibration, reference, external_data=external_data)
    report = GuardReport(min_agreement, scorer.format, {"calibration": calibration.describe()}, fp32_size)
    search(graph, target, scorer, report, candidates=candidates, keep_lossy=keep_lossy,
           external_data=external_data, progress=progress)
    if measure_speed and report.chosen is not None:
        fp32_speed, int8_speed = runner.speeds([graph, target], pairs=SPEED_PAIRS)
        position = next(i for i, c in enumerate(report.candidates) if c is report.chosen)
        report.candidates[position] = report.chosen = replace(report.chosen, speedup=int8_speed / fp32_speed)
    return report
