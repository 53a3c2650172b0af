"""The int8 search, one for every model kind: try candidates, keep the first that agrees with fp32.

A model kind says only how to score a candidate against fp32 (a :class:`Scorer`: ``nli`` for
cross-encoders, ``embedding`` for sentence-embedding bundles); everything else is here, once:

1. activation statistics of the fp32 graph (the scorer picks the data: never the data that
   decides pass/fail);
2. the base candidates in order, each built, checked for AVX2 saturation
   (:func:`weights.saturation_free`: a graph that could compute something else on CPUs without
   VNNI is never scored, let alone shipped) and scored; a ``select_static`` candidate first
   chooses the LayerNorm outputs that take a calibrated scale, one change at a time;
3. if none passes, each MatMul is quantized alone and ranked by how far that moves the scorer's
   output (per weight it holds, where the scorer says so: keeping a MatMul in fp32 costs time in
   proportion to its weights), and the last base candidate is retried with the most harmful
   MatMuls kept in fp32, along the scorer's :class:`Ladder`;
4. if still none passes, nothing is kept, or with ``keep_lossy`` the most faithful candidate.

Candidates are written to a scratch folder beside the target; those that can no longer be
chosen are deleted as the search goes (each is a full model copy), and the chosen one is moved
to the target.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from .._graph import external_files, size_with_data
from .candidates import QuantConfig, RowQuantizer, save_model
from .rowquant import matmul_inputs, weight_matmuls
from .sensitivity import END_TO_END, ONE_PASS, STATIC_TOLERANCE, Probe, rank, ranks_in_one_pass, within_tolerance
from .stats import ActivationStats
from .weights import saturation_free

__all__ = [
    "STATIC_TOLERANCE",
    "CandidateResult",
    "GuardReport",
    "Ladder",
    "ReportFormat",
    "Score",
    "Scorer",
    "search",
    "within_tolerance",
]

Progress = Callable[[str], None]
COARSE_BISECTION = 2  # bisection steps after a pass, for graphs ranked in one pass
# Graphs above END_TO_END_RANKING_WEIGHTS choose no LayerNorm scales: one whole-graph probe each
# (24 on XLM-R large) costs more than the rest of the search, and a MatMul's own output error
# does not stand in for it: on the fixture a calibrated scale raised the FFN input MatMul's own
# error 2.2-2.4x in layers 0 to 4 alike, while the logits moved -0.5% to +8.4%.


@dataclass(frozen=True)
class Ladder:
    """How many of the ranked MatMuls the back-off keeps in fp32, in the order tried
    (``counts(number of MatMuls)``), and whether a pass is followed by bisection down to the
    fewest fp32 MatMuls that still pass (else the first pass is kept)."""

    counts: Callable[[int], list[int]]
    bisect: bool


@dataclass(frozen=True)
class Score:
    """What a scorer measured for one candidate graph."""

    heldout_agreement: float  # decides pass/fail against min_agreement
    measures: Mapping[str, float] = field(default_factory=dict)  # the kind's other measures
    speedup: float | None = None  # vs fp32; None when not measured


@dataclass(frozen=True)
class CandidateResult:
    """One candidate the search built and scored."""

    config: QuantConfig
    # Agreement with fp32 on data that neither the statistics nor the rankings saw, the figure
    # compared with min_agreement (NLI: top-1 on held-out pairs; embeddings: expected agreement).
    heldout_agreement: float
    passed: bool
    size: int  # bytes, with external data
    speedup: float | None = None  # vs fp32, median of interleaved passes; None when not measured
    measures: Mapping[str, float] = field(default_factory=dict)  # the scorer's other measures


class ReportFormat(Protocol):
    """How a model kind records its search in the bundle manifest."""

    def candidate_json(self, result: CandidateResult) -> dict[str, Any]: ...

    def report_json(self, report: GuardReport) -> dict[str, Any]: ...


class Scorer(Protocol):
    """What a model kind tells the search: its data, and how to score a graph against fp32."""

    ladder: Ladder
    rank_per_weight: bool  # rank MatMuls by error per weight (else by error)
    format: ReportFormat
    statistics_source: str  # for the log: "from N ranking pairs"

    def statistics(self, model: Any, activations: Sequence[str], work: Path) -> dict[str, ActivationStats]:
        """fp32 statistics of ``activations`` of ``model`` (onnx.ModelProto)."""
        ...

    def probe(self, model: Any, outputs: Sequence[str], work: Path, consume: Callable[[str, Any], None]) -> None:
        """Run ``model`` (onnx.ModelProto) on the statistics' data with ``outputs`` exposed;
        ``consume(name, rows)`` gets each output's real token rows, batch by batch."""
        ...

    def score(self, path: Path) -> Score:
        """The candidate graph at ``path`` against fp32."""
        ...

    def change_error(self, path: Path) -> float:
        """How far the graph at ``path`` (one change from fp32) moves the output, on the
        statistics' data, never on the data that decides pass/fail."""
        ...

    def summary(self, result: CandidateResult, report: GuardReport) -> str:
        """One log line for a scored candidate."""
        ...


@dataclass
class GuardReport:
    """The search's record: every candidate tried, the rankings, and the choice."""

    min_agreement: float
    format: ReportFormat = field(repr=False, compare=False)
    context: dict[str, Any] = field(default_factory=dict)  # what the kind records about its data
    fp32_size: int = 0
    weight_matmuls: int = 0
    candidates: list[CandidateResult] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)  # ranked, most harmful first
    ranking: str | None = None  # how sensitivity was measured: "end_to_end" or "one_pass"
    static_base_error: float | None = None  # ranking data's error before any static_inputs
    static_sensitivity: list[tuple[str, float]] = field(default_factory=list)
    chosen: CandidateResult | None = None
    kept_lossy: bool = False

    def to_json(self) -> dict[str, Any]:
        return self.format.report_json(self)

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


def search(
    graph: Path,
    target: Path,
    scorer: Scorer,
    report: GuardReport,
    *,
    candidates: Sequence[QuantConfig],
    keep_lossy: bool,
    external_data: bool,
    progress: Progress | None = None,
) -> GuardReport:
    """Search int8 candidates of the fp32 ``graph``; the chosen one ends up at ``target``."""
    import onnx

    say = progress or (lambda message: None)
    work = target.parent / ".guard"
    work.mkdir(exist_ok=True)
    try:
        model = onnx.load(str(graph))
        nodes = weight_matmuls(model)
        say(f"      per-row int8 over {len(nodes)} weight MatMuls; activation statistics from "
            f"{scorer.statistics_source}")
        started = time.perf_counter()
        quantizer = RowQuantizer(model, scorer.statistics(model, matmul_inputs(model, nodes), work))
        say(f"      statistics done in {_duration(time.perf_counter() - started)}")
        report.weight_matmuls = len(quantizer.nodes)
        attempts = _Attempts(quantizer, scorer, report, work, external_data=external_data, say=say)
        error = _ChangeError(scorer, work / "one-change.onnx", external_data)
        passed, start = _try_bases(candidates, attempts, lambda config: _choose_static_inputs(
            quantizer, config, error=error, report=report, say=say))
        if passed is None and start is not None:
            ordered = _rank_nodes(quantizer, start, error, partial(_probe_in, scorer, work), report,
                                  scorer.rank_per_weight, say)
            passed = _back_off(attempts, start, ordered, scorer.ladder, coarse=report.ranking == ONE_PASS)
        if passed is not None:
            attempts.choose(passed, target)
        elif keep_lossy and report.candidates:
            attempts.choose(max(report.candidates, key=lambda c: c.heldout_agreement), target, lossy=True)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Attempts:
    """Builds, checks, saves and scores candidates, recording each in the report."""

    def __init__(self, quantizer: RowQuantizer, scorer: Scorer, report: GuardReport, work: Path, *,
                 external_data: bool, say: Progress) -> None:
        self._quantizer, self._scorer, self._report, self._work = quantizer, scorer, report, work
        self._external_data, self._say = external_data, say
        self._files: dict[int, Path] = {}
        self._seconds: list[float] = []  # how long each candidate took, for the estimates

    def estimate(self, candidates: int) -> str:
        """About how long ``candidates`` more candidates take, at the pace of the latest one (the
        first also rounds every MatMul's weights, which later candidates reuse)."""
        if not self._seconds:
            return "unknown time"
        return f"about {_duration(candidates * self._seconds[-1])}"

    def say(self, message: str) -> None:
        self._say(message)

    def __call__(self, config: QuantConfig) -> CandidateResult:
        started = time.perf_counter()
        report = self._report
        path = self._work / f"candidate-{len(report.candidates)}.onnx"
        built = self._quantizer.build(config)
        unsafe = saturation_free(built)
        if unsafe:  # cannot happen with our weights; never ship a graph that could
            raise RuntimeError(f"int8 weights outside the AVX2-safe range in {unsafe[:3]}")
        save_model(built, path, external_data=self._external_data)
        score = self._scorer.score(path)
        result = CandidateResult(
            config=config, heldout_agreement=score.heldout_agreement,
            passed=score.heldout_agreement >= report.min_agreement, size=size_with_data(path),
            speedup=score.speedup, measures=dict(score.measures),
        )
        report.candidates.append(result)
        self._files[id(result)] = path
        self._prune()
        self._seconds.append(time.perf_counter() - started)
        self._say(f"{self._scorer.summary(result, report)} [{_duration(self._seconds[-1])}]")
        return result

    def choose(self, result: CandidateResult, target: Path, *, lossy: bool = False) -> None:
        self._report.chosen, self._report.kept_lossy = result, lossy
        _move(self._files[id(result)], target)

    def _prune(self) -> None:
        """Delete candidate files that can no longer be chosen: keep the passing ones and the
        most faithful one (for keep_lossy)."""
        results = self._report.candidates
        best = max(results, key=lambda c: c.heldout_agreement)
        for result in results:
            path = self._files.get(id(result))
            if path is not None and result is not best and not result.passed:
                delete_graph(path)
                del self._files[id(result)]


@dataclass(frozen=True)
class _ChangeError:
    """The scorer's error of one in-memory graph with a single change (one MatMul, one
    calibrated scale), saved to a scratch path first."""

    scorer: Scorer
    path: Path
    external_data: bool

    def __call__(self, model: Any) -> float:
        delete_graph(self.path)  # onnx appends to an existing external-data file
        save_model(model, self.path, external_data=self.external_data)
        return self.scorer.change_error(self.path)

    def clean(self) -> None:
        delete_graph(self.path)


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


def _choose_static_inputs(quantizer: RowQuantizer, config: QuantConfig, error: _ChangeError,
                          report: GuardReport, say: Progress) -> QuantConfig:
    """``config`` with one calibrated scale for each LayerNorm output that, on its own, moves the
    ranking data's output by at most STATIC_TOLERANCE more than ``config`` without any."""
    plain = replace(config, select_static=False)
    eligible = [] if config.rotation else quantizer.layer_norm_inputs()  # rotation rules out static scales
    if not eligible:
        say("      no LayerNorm output can take a calibrated scale here")
        return plain
    if ranks_in_one_pass(quantizer):  # one whole-graph probe per LayerNorm output
        say(f"      no calibrated LayerNorm scales: measuring {len(eligible)} of them end to end would take longer "
            "than the rest of the search on a graph this size")
        return plain
    say(f"      measuring a calibrated scale for each of {len(eligible)} LayerNorm outputs alone")
    report.static_base_error = base = error(quantizer.build(plain))
    report.static_sensitivity = [(a, error(quantizer.build(replace(plain, static_inputs=(a,))))) for a in eligible]
    error.clean()
    chosen = within_tolerance(base, report.static_sensitivity)
    say(f"      {len(chosen)} of {len(eligible)} keep a calibrated scale")
    return replace(plain, static_inputs=chosen)


def _rank_nodes(quantizer: RowQuantizer, config: QuantConfig, error: _ChangeError, probe: Probe,
                report: GuardReport, per_weight: bool, say: Progress) -> list[str]:
    """Most harmful first (``sensitivity.rank``), recorded in the report."""
    say(f"      no base candidate passed; ranking the {len(quantizer.nodes)} MatMuls ({config.name})")
    started = time.perf_counter()
    report.sensitivity, report.ranking = rank(quantizer, config, alone=error, probe=probe, per_weight=per_weight)
    error.clean()
    say(f"      ranked {'end to end, each alone' if report.ranking == END_TO_END else 'in one pass'} "
        f"in {_duration(time.perf_counter() - started)}")
    return [node for node, _ in report.sensitivity]


def _probe_in(scorer: Scorer, work: Path, model: Any, outputs: Sequence[str], consume: Callable[[str, Any], None]) -> None:
    scorer.probe(model, outputs, work, consume)


def _back_off(attempts: _Attempts, start: QuantConfig, ordered: Sequence[str], ladder: Ladder, *,
              coarse: bool) -> CandidateResult | None:
    """Keep more of the most harmful MatMuls in fp32, along ``ladder``, until a candidate
    passes; with ``ladder.bisect``, then the fewest fp32 MatMuls that still pass. None if none.

    ``coarse`` (graphs ranked in one pass, where each candidate takes minutes): the ladder starts
    at a sixteenth of the MatMuls and bisects at most COARSE_BISECTION times."""
    counts = ladder.counts(len(ordered))
    if coarse:
        counts = [c for c in counts if c >= len(ordered) // 16] or counts[-1:]
    steps = math.ceil(math.log2(max(counts))) if ladder.bisect and counts else 0
    steps = min(steps, COARSE_BISECTION) if coarse else steps
    attempts.say(f"      back-off: up to {len(counts)} candidates" + (f" and {steps} to bisect" if steps else "")
                 + f", {attempts.estimate(len(counts) + steps)} at most")
    failed = 0
    for count in counts:
        result = attempts(start.excluding(ordered[:count]))
        if result.passed:
            return _bisect(attempts, start, ordered, failed, count, result, steps) if ladder.bisect else result
        failed = count
    return None


def _bisect(attempts: _Attempts, start: QuantConfig, ordered: Sequence[str], low: int, high: int,
            best: CandidateResult, steps: int) -> CandidateResult:
    """Between ``low`` fp32 MatMuls (failed) and ``high`` (passed, ``best``): the fewest that
    pass, in at most ``steps`` candidates."""
    if high - low > 1 and steps > 0:
        attempts.say(f"      bisecting between {low} and {high} fp32 MatMuls: "
                     f"{attempts.estimate(min(steps, math.ceil(math.log2(high - low))))}")
    while high - low > 1 and steps > 0:
        middle = (low + high) // 2
        trial = attempts(start.excluding(ordered[:middle]))
        low, high, best = (low, middle, trial) if trial.passed else (middle, high, best)
        steps -= 1
    return best


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def delete_graph(path: Path) -> None:
    """Delete a graph file and its external data."""
    for leftover in [path, *external_files(path)]:
        leftover.unlink(missing_ok=True)


def _move(path: Path, target: Path) -> None:
    if not external_files(path):
        shutil.move(str(path), target)
        return
    import onnx  # graphs over 2 GB: re-save so the weights file is named after the target

    model = onnx.load(str(path))
    onnx.save(model, str(target), save_as_external_data=True, location=target.name + "_data")
