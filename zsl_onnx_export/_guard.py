"""The int8 accuracy guard: try int8 candidates, keep the first that agrees with fp32.

Every candidate quantizes each activation row on its own (``_rowquant``): batch-independent,
and with AVX2-safe weights, so any accepted graph has exact integer products on AVX2,
AVX512-VNNI and AMX CPUs (:func:`_rowquant.saturation_free` is checked before a candidate is
scored). Order: the base candidates (every weight MatMul in int8; for the first, each LayerNorm
output that one MatMul reads is tried alone with a calibrated scale on the ranking pairs, and
those that move the logits little keep it); if none passes, each MatMul
is quantized alone and ranked by how far it moves the logits on the ranking pairs, and the
last base (per-row scales everywhere) is retried with the top 1, 2, 4, 8, ... MatMuls kept in
fp32, up to half of them; after the first pass, bisection finds the fewest fp32 MatMuls that
still pass. Pass/fail is top-1 agreement with the fp32 model on the held-out pairs, which
never influence statistics or the ranking.

Candidates run through the runtime's own inference loop (``run_encodings``, with the
classifier's batch size and CPU token cap), so the guard measures what users get. Speeds come
from interleaved repeated passes of fp32 and the candidate, and can be switched off.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
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

from ._activations import ActivationStats, collect_stats
from ._calibration import CalibrationSet
from ._graph import external_files, size_with_data
from ._quantize import BASE_CANDIDATES, QuantConfig, RowQuantizer, save_model
from ._rowquant import matmul_inputs, saturation_free, weight_matmuls

__all__ = ["CandidateResult", "GuardReport", "PairRunner", "search_int8", "within_tolerance"]

Progress = Callable[[str], None]
SPEED_PAIRS = 256  # pairs per timed pass: enough for a stable median, few enough for big models
# A LayerNorm output gets one calibrated scale when that alone raises the ranking pairs' mean
# |logit diff| by at most 5%. On the fixture the FFN inputs of layers 2-5 moved it by -0.5% to
# +2.5% and those of layers 0 and 1 by +8.4% and +5.3% (the bundle manifest's guard record,
# benchmarks/results/int8_bundle_manifest.json).
STATIC_TOLERANCE = 0.05


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

        def open_probe(probe: Any) -> Any:
            path = work / "probe.onnx"
            save_model(probe, path, external_data=external_data)
            return create_session(path, threads=self._threads)

        return collect_stats(
            model, activations, self._select(subset), make_session=open_probe,
            pad_id=self._pad_id, batch_size=self._batch_size, max_tokens=self._max_tokens,
        )


@dataclass(frozen=True)
class CandidateResult:
    config: QuantConfig
    heldout_agreement: float
    ranking_agreement: float
    max_abs_diff: float
    size: int
    speedup: float | None  # vs fp32, median of interleaved passes; None when not measured
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "heldout_agreement": round(self.heldout_agreement, 6),
            "ranking_agreement": round(self.ranking_agreement, 6),
            "max_abs_logit_diff": round(self.max_abs_diff, 6),
            "size": self.size,
            "speedup_vs_fp32": None if self.speedup is None else round(self.speedup, 3),
            "passed": self.passed,
            "fp32_nodes": list(self.config.nodes_to_exclude),
        }


@dataclass
class GuardReport:
    min_agreement: float
    calibration: dict[str, object]
    graph: dict[str, Any]
    fp32_size: int
    candidates: list[CandidateResult] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)
    static_base_error: float | None = None  # ranking pairs' mean |logit diff| before static_inputs
    static_sensitivity: list[tuple[str, float]] = field(default_factory=list)
    chosen: CandidateResult | None = None
    kept_lossy: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "min_agreement": self.min_agreement,
            "reference": "ONNX fp32 model, top-1 on held-out calibration pairs",
            "calibration": self.calibration,
            "graph": self.graph,
            "fp32": {"size": self.fp32_size},
            "speed_measurement": f"first {SPEED_PAIRS} calibration pairs, median of interleaved passes with fp32",
            "candidates": [c.to_json() for c in self.candidates],
            "chosen": self.chosen.config.name if self.chosen else None,
            "kept_lossy": self.kept_lossy,
            "most_sensitive_nodes": [{"node": n, "mean_abs_logit_diff": round(s, 6)} for n, s in self.sensitivity[:16]],
            "static_selection": None if self.static_base_error is None else {
                "tolerance": STATIC_TOLERANCE,
                "base_mean_abs_logit_diff": round(self.static_base_error, 6),
                "alone": [{"activation": a, "mean_abs_logit_diff": round(s, 6)} for a, s in self.static_sensitivity],
            },
        }

    def table(self) -> str:
        rows = ["candidate                              agreement  size/fp32  speed/fp32  result"]
        for c in self.candidates:
            verdict = "chosen" if c is self.chosen else ("pass" if c.passed else "fail")
            speed = "-" if c.speedup is None else f"{c.speedup:.2f}x"
            rows.append(
                f"{c.config.name:<38} {c.heldout_agreement:>9.2%}  {c.size / self.fp32_size:>9.0%}  "
                f"{speed:>10}  {verdict}"
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
    min_agreement: float,
    external_data: bool,
    keep_lossy: bool = False,
    candidates: Sequence[QuantConfig] = BASE_CANDIDATES,
    measure_speed: bool = True,
    graph_info: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> GuardReport:
    """Quantize the fp32 ``graph`` candidate by candidate; the chosen one ends up at ``target``.

    ``reference`` holds the fp32 model's logits on all calibration pairs. ``measure_speed``
    False skips the timed passes (tests, or exports where only fidelity matters).
    """
    import onnx

    say = progress or (lambda message: None)
    report = GuardReport(min_agreement, calibration.describe(), dict(graph_info or {}), fp32_size)
    work = target.parent / ".guard"
    work.mkdir(exist_ok=True)
    files: dict[int, Path] = {}
    try:
        model = onnx.load(str(graph))
        nodes = weight_matmuls(model)
        say(f"      per-row int8 over {len(nodes)} weight MatMuls; activation statistics "
            f"from {len(calibration.ranking)} ranking pairs")
        stats = runner.stats(model, matmul_inputs(model, nodes), calibration.ranking, work, external_data=external_data)
        quantizer = RowQuantizer(model, stats)
        report.graph.update({"weight_matmuls": len(quantizer.nodes)})

        attempt = _attempter(quantizer, runner, graph, work, report, files, reference, calibration,
                             external_data=external_data, measure_speed=measure_speed, say=say)

        def choose(result: CandidateResult, *, lossy: bool = False) -> GuardReport:
            report.chosen, report.kept_lossy = result, lossy
            _move(files[id(result)], target)
            return report

        error = _RankingError(runner, calibration, reference, work / "one-change.onnx", external_data)
        resolve = partial(_choose_static_inputs, quantizer, error=error, report=report, say=say)
        passed, start = _try_bases(candidates, attempt, resolve)
        if passed is not None:
            return choose(passed)
        if start is not None:
            ordered = _rank_nodes(quantizer, start, error, report, say)
            best = _back_off(attempt, start, ordered)
            if best is not None:
                return choose(best)
        if keep_lossy and report.candidates:
            return choose(max(report.candidates, key=lambda c: c.heldout_agreement), lossy=True)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _attempter(quantizer: RowQuantizer, runner: PairRunner, graph: Path, work: Path, report: GuardReport,
               files: dict[int, Path], reference: np.ndarray, calibration: CalibrationSet, *,
               external_data: bool, measure_speed: bool, say: Progress) -> Callable[[QuantConfig], CandidateResult]:
    """A function that builds, saves and scores one candidate, recording it in ``report``."""
    fp32_size, min_agreement = report.fp32_size, report.min_agreement

    def attempt(config: QuantConfig) -> CandidateResult:
        path = work / f"candidate-{len(report.candidates)}.onnx"
        built = quantizer.build(config)
        unsafe = saturation_free(built)
        if unsafe:  # cannot happen with _rowquant's weights; never ship a graph that could
            raise RuntimeError(f"int8 weights outside the AVX2-safe range in {unsafe[:3]}")
        save_model(built, path, external_data=external_data)
        logits = runner.logits(path)
        speedup = None
        if measure_speed:
            fp32_speed, int8_speed = runner.speeds([graph, path], pairs=SPEED_PAIRS)
            speedup = int8_speed / fp32_speed
        result = _score(config, logits, reference, calibration, path, speedup, min_agreement)
        report.candidates.append(result)
        files[id(result)] = path
        _prune(report.candidates, files)
        say(f"      {config.name}: agreement {result.heldout_agreement:.2%}, "
            f"{result.size / fp32_size:.0%} of fp32 size"
            + ("" if speedup is None else f", {speedup:.2f}x fp32 speed"))
        return result

    return attempt


def _back_off(attempt: Callable[[QuantConfig], CandidateResult], start: QuantConfig,
              ordered: Sequence[str]) -> CandidateResult | None:
    """Keep more of the most sensitive MatMuls in fp32 (a growing ladder, then bisection) until
    a candidate passes; the passing candidate with the fewest fp32 MatMuls, or None."""
    failed = 0
    for count in _ladder(len(ordered)):
        result = attempt(start.excluding(ordered[:count]))
        if result.passed:
            # Fewest fp32 MatMuls that still pass: bisect between the last failure and here.
            low, high, best = failed, count, result
            while high - low > 1:
                middle = (low + high) // 2
                trial = attempt(start.excluding(ordered[:middle]))
                low, high, best = (low, middle, trial) if trial.passed else (middle, high, best)
            return best
        failed = count
    return None


def _prune(results: list[CandidateResult], files: dict[int, Path]) -> None:
    """Delete candidate files that can no longer be chosen (each is a full model copy): keep
    the passing ones and the most faithful one (for --keep-lossy-int8)."""
    best = max(results, key=lambda c: c.heldout_agreement)
    for result in results:
        path = files.get(id(result))
        if path is not None and result is not best and not result.passed:
            _delete_graph(path)
            del files[id(result)]


@dataclass(frozen=True)
class _RankingError:
    """Mean |logit diff| from fp32 on the ranking pairs of one graph: how the guard measures a
    single change (one MatMul, one calibrated scale) without touching the held-out pairs."""

    runner: PairRunner
    calibration: CalibrationSet
    reference: np.ndarray
    path: Path
    external_data: bool

    def __call__(self, model: Any) -> float:
        _save_fresh(model, self.path, external_data=self.external_data)
        ranking = self.calibration.ranking
        return float(np.abs(self.runner.logits(self.path, subset=ranking) - self.reference[ranking]).mean())

    def clean(self) -> None:
        _delete_graph(self.path)


def _rank_nodes(quantizer: RowQuantizer, config: QuantConfig, error: _RankingError, report: GuardReport,
                say: Progress) -> list[str]:
    """Quantize each MatMul alone; most sensitive first (mean |logit diff| on the ranking pairs)."""
    say(f"      no base candidate passed; measuring each of {len(quantizer.nodes)} MatMuls alone ({config.name})")
    report.sensitivity = [(node, error(quantizer.build(config, only_nodes=[node]))) for node in quantizer.nodes]
    error.clean()
    report.sensitivity.sort(key=lambda item: item[1], reverse=True)
    return [node for node, _ in report.sensitivity]


def _try_bases(
    candidates: Sequence[QuantConfig],
    attempt: Callable[[QuantConfig], CandidateResult],
    resolve: Callable[[QuantConfig], QuantConfig],
) -> tuple[CandidateResult | None, QuantConfig | None]:
    """Attempt the base candidates in order; the first that passes, and the last config tried
    (where the back-off starts). A ``select_static`` config is resolved first and skipped when
    it chose nothing, unless it is the last one."""
    last = None
    for position, config in enumerate(candidates):
        if config.select_static:
            config = resolve(config)
            if not config.static_inputs and position < len(candidates) - 1:
                continue  # the same graph as the next base candidate
        last = config
        if (result := attempt(config)).passed:
            return result, config
    return None, last


def _choose_static_inputs(quantizer: RowQuantizer, config: QuantConfig, error: _RankingError,
                          report: GuardReport, say: Progress) -> QuantConfig:
    """``config`` with one calibrated scale for each LayerNorm output that, on its own, moves the
    ranking pairs' logits by at most STATIC_TOLERANCE more than ``config`` without any."""
    plain = replace(config, select_static=False)
    eligible = [] if config.rotation else quantizer.layer_norm_inputs()  # rotation rules out static scales
    if not eligible:
        say("      no LayerNorm output can take a calibrated scale here")
        return plain
    say(f"      measuring a calibrated scale for each of {len(eligible)} LayerNorm outputs alone")
    report.static_base_error = base = error(quantizer.build(plain))
    report.static_sensitivity = [(a, error(quantizer.build(replace(plain, static_inputs=(a,))))) for a in eligible]
    error.clean()
    chosen = within_tolerance(base, report.static_sensitivity)
    say(f"      {len(chosen)} of {len(eligible)} keep a calibrated scale")
    return replace(plain, static_inputs=chosen)


def within_tolerance(
    base: float, sensitivity: Sequence[tuple[str, float]], tolerance: float = STATIC_TOLERANCE
) -> tuple[str, ...]:
    """The activations whose error stays within ``tolerance`` (relative) of ``base``."""
    return tuple(a for a, err in sensitivity if err <= base * (1.0 + tolerance))


def _save_fresh(model: Any, path: Path, *, external_data: bool) -> None:
    """Save ``model`` at ``path`` after deleting what was there: onnx appends to an existing
    external-data file, so reusing a path would grow it by a model copy each time."""
    _delete_graph(path)
    save_model(model, path, external_data=external_data)


def _delete_graph(path: Path) -> None:
    """Delete a graph file and its external data."""
    for leftover in [path, *external_files(path)]:
        leftover.unlink(missing_ok=True)


def _ladder(nodes: int) -> list[int]:
    """How many MatMuls to keep in fp32: 1, 2, 4, 8, ... and exactly half last."""
    half = nodes // 2
    return sorted({min(2**i, half) for i in range(half.bit_length() + 1)} - {0})


def _score(
    config: QuantConfig,
    logits: np.ndarray,
    reference: np.ndarray,
    calibration: CalibrationSet,
    path: Path,
    speedup: float | None,
    min_agreement: float,
) -> CandidateResult:
    agree = np.argmax(logits, axis=1) == np.argmax(reference, axis=1)
    heldout = float(agree[calibration.heldout].mean())
    return CandidateResult(
        config=config,
        heldout_agreement=heldout,
        ranking_agreement=float(agree[calibration.ranking].mean()),
        max_abs_diff=float(np.abs(logits - reference).max()),
        size=size_with_data(path),
        speedup=speedup,
        passed=heldout >= min_agreement,
    )


def _move(path: Path, target: Path) -> None:
    if not external_files(path):
        shutil.move(str(path), target)
        return
    import onnx  # graphs over 2 GB: re-save so the weights file is named after the target

    model = onnx.load(str(path))
    onnx.save(model, str(target), save_as_external_data=True, location=target.name + "_data")
