"""The int8 guard of an embedding bundle: keep an int8 file only if it ranks labels like fp32.

The embedding scorer of the int8 search (``search``). Candidates are the exporter's per-row
int8 (``candidates``: one activation scale per token row, so a text's vector does not depend on
its batch mates; here with rotated activations and paired 8-bit weights,
``EMBEDDING_CANDIDATES``), with activation statistics from one set of texts. The int8 file encodes texts only: label hypotheses stay on the fp32 file (the
manifest's ``label_variant``), as the runtime runs them. Each candidate is scored through the
runtime's own embedding path on other, held-out texts against several label sets, most of them
near-synonym sets whose decisions are close (see ``_embedding_calibration``): 64 texts x 14
sets = 896 decisions.

Counting the decisions whose top label flips is a noisy test: a few decisions that fp32 itself
nearly ties flip or not by chance, whatever the candidate's quality. So the guard measures how
far int8 moves each decision's margin (fp32's top label minus its runner-up), takes the root
mean square ``sigma`` of that shift over all decisions, and passes a candidate when the
agreement this noise gives on the guard's own margins, mean of 1 - Phi(-margin / sigma), is at
least ``min_agreement``. Two simplifications: only the runner-up is modelled (a flip to a
third close label is not counted), and one pooled sigma stands for every decision. On
all-MiniLM-L6-v2 the prediction was at or below the agreement measured on AG News and SST-2
for every candidate (with labels through int8 too it was not, on SST-2, for the every-MatMul
candidate), so it is evidence, not a bound. The counted top-1 agreement and the full label
order (share of label pairs ordered as fp32 orders them) are reported too.

If no candidate passes, the MatMuls that move the statistics texts' vectors most per weight
they hold are kept in fp32 along ``EMBEDDING_LADDER``: 1, 2, 4, then steps of 4 up to three
quarters of them, keeping the first that passes. It is not the NLI ladder (doubling up to half,
then bisection): the bundles exported so far were chosen along this one, and the scorer names
its own ladder so that each kind keeps its choices.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zsl_onnx.internals import (
    CPU_MAX_BATCH_TOKENS,
    build_hypotheses,
    cosine_matrix,
    create_session,
    load_embedding_scorer,
    read_bundle,
)

from .._graph import size_with_data
from .candidates import EMBEDDING_CANDIDATES, QuantConfig, needs_external_data, save_model
from .rowquant import matmul_inputs, weight_matmuls
from .search import CandidateResult, GuardReport, Ladder, Score, search
from .stats import ActivationStats, collect_stats, run_probe

__all__ = [
    "EMBEDDING_LADDER",
    "EmbeddingScorer",
    "agreement",
    "backoff_counts",
    "expected_agreement",
    "guard_int8",
    "label_cosines",
    "probe",
    "statistics",
]

Progress = Callable[[str], None]


def label_cosines(
    bundle_dir: Path, model_path: Path, texts: Sequence[str], label_sets: Sequence[Sequence[str]], template: str,
    *, label_model: Path | None = None,
) -> list[np.ndarray]:
    """Cosines [texts, labels] for each label set, computed by the runtime on ``model_path``
    (the label hypotheses on ``label_model`` when given)."""
    scorer = load_embedding_scorer(
        read_bundle(bundle_dir), model_path, label_model_path=label_model, max_length=None, providers=None,
        threads=None, session_options=None,
    )
    # What scorer.cosines computes, with the texts embedded once for all label sets
    vectors = scorer.embed(texts, batch_size=32, max_tokens=CPU_MAX_BATCH_TOKENS)
    return [cosine_matrix(vectors, scorer.label_vectors(build_hypotheses(labels, template), batch_size=32,
                                                        max_tokens=CPU_MAX_BATCH_TOKENS)) for labels in label_sets]


def agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> tuple[float, float]:
    """(top-1 agreement, pairwise label-order agreement) of candidate cosines with the reference."""
    top1 = np.concatenate([r.argmax(axis=1) == c.argmax(axis=1) for r, c in zip(reference, candidate)])
    pairs = []
    for r, c in zip(reference, candidate):
        i, j = np.triu_indices(r.shape[1], k=1)
        pairs.append((np.sign(r[:, i] - r[:, j]) == np.sign(c[:, i] - c[:, j])).ravel())
    return float(top1.mean()), float(np.concatenate(pairs).mean())


def expected_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> tuple[float, float]:
    """(expected top-1 agreement, sigma): sigma is the root mean square shift, candidate minus
    reference, of each decision's margin between the reference's top label and its runner-up;
    the expected agreement is the mean over decisions of P(a shift N(0, sigma) does not undo the
    margin) = 1 - Phi(-margin / sigma)."""
    margins, shifts = [], []
    for r, c in zip(reference, candidate):
        order = np.argsort(r, axis=1, kind="stable")
        rows, top, second = np.arange(len(r)), order[:, -1], order[:, -2]
        margin = r[rows, top] - r[rows, second]
        margins.append(margin)
        shifts.append(c[rows, top] - c[rows, second] - margin)
    margin, shift = np.concatenate(margins).astype(np.float64), np.concatenate(shifts).astype(np.float64)
    sigma = float(np.sqrt(np.mean(shift**2))) if shift.size else 0.0
    if sigma == 0.0:
        return 1.0, 0.0
    flips = [0.5 * math.erfc(m / (sigma * math.sqrt(2.0))) for m in margin]  # Phi(-m / sigma)
    return 1.0 - float(np.mean(flips)), sigma


def backoff_counts(nodes: int) -> list[int]:
    """How many MatMuls the back-off keeps in fp32, in the order tried: 1, 2, 4, then steps of 4
    up to three quarters of them (36 MatMuls: 1, 2, 4, 8, 12, ..., 24)."""
    limit = 3 * nodes // 4
    return [c for c in (1, 2, 4) if c <= limit] + list(range(8, limit + 1, 4))


def statistics(
    bundle_dir: Path, source: Path, model: Any, texts: Sequence[str], label_sets: Sequence[Sequence[str]],
    template: str, external_data: bool,
) -> dict[str, ActivationStats]:
    """fp32 activation statistics of the MatMul inputs over texts and label hypotheses, encoded
    as the runtime encodes them (prompts included)."""
    stats: dict[str, ActivationStats] = {}

    def run(graph: Any, make_session: Callable[[Any], Any], encodings: Sequence[Any], pad_id: int) -> None:
        stats.update(collect_stats(graph, matmul_inputs(graph, weight_matmuls(graph)), encodings,
                                   make_session=make_session, pad_id=pad_id, batch_size=32, max_tokens=CPU_MAX_BATCH_TOKENS))

    _with_probe_data(bundle_dir, source, model, texts, label_sets, template, external_data, run)
    return stats


def probe(
    bundle_dir: Path, source: Path, model: Any, outputs: Sequence[str], consume: Callable[[str, np.ndarray], None], *,
    texts: Sequence[str], label_sets: Sequence[Sequence[str]], template: str, external_data: bool,
) -> None:
    """Run ``model`` with ``outputs`` exposed on the statistics data (``stats.run_probe``)."""

    def run(graph: Any, make_session: Callable[[Any], Any], encodings: Sequence[Any], pad_id: int) -> None:
        run_probe(graph, outputs, encodings, consume, make_session=make_session, pad_id=pad_id,
                  batch_size=32, max_tokens=CPU_MAX_BATCH_TOKENS)

    _with_probe_data(bundle_dir, source, model, texts, label_sets, template, external_data, run)


def _with_probe_data(
    bundle_dir: Path, source: Path, model: Any, texts: Sequence[str], label_sets: Sequence[Sequence[str]],
    template: str, external_data: bool, run: Callable[[Any, Callable[[Any], Any], Sequence[Any], int], None],
) -> None:
    """Call ``run(model, make_session, encodings, pad_id)`` with the texts and label hypotheses
    encoded as the runtime encodes them, and sessions opened from a scratch folder."""
    scorer = load_embedding_scorer(read_bundle(bundle_dir), source, max_length=None, providers=None, threads=None,
                                   session_options=None)
    hypotheses = [h for labels in label_sets for h in build_hypotheses(labels, template)]
    encodings = scorer.tokenizer.encode(texts, scorer.prompts.text) + scorer.tokenizer.encode(hypotheses, scorer.prompts.label)
    with tempfile.TemporaryDirectory(dir=bundle_dir, prefix=".stats-") as work:

        def open_probe(graph: Any) -> Any:
            path = Path(work) / "probe.onnx"
            save_model(graph, path, external_data=needs_external_data(graph, external_data))
            return create_session(path)

        run(model, open_probe, encodings, scorer.tokenizer.pad_id)


EMBEDDING_LADDER = Ladder(backoff_counts, bisect=False)  # the first pass is kept


class EmbeddingFormat:
    """The guard record of an embedding bundle's manifest."""

    def candidate_json(self, result: CandidateResult) -> dict[str, Any]:
        measures = result.measures
        return {"name": result.config.name, "config": result.config.to_json(),
                "top1_agreement": round(measures["top1_agreement"], 6),
                "expected_agreement": round(result.heldout_agreement, 6),
                "margin_shift_rms": round(measures["margin_shift_rms"], 6),
                "label_order_agreement": round(measures["label_order_agreement"], 6), "passed": result.passed}

    def report_json(self, report: GuardReport) -> dict[str, Any]:
        return {
            "decisions": report.context["decisions"],
            "min_agreement": report.min_agreement,
            "candidates": [self.candidate_json(c) for c in report.candidates],
            "chosen": None if report.chosen is None else report.chosen.config.name,
            "kept_lossy": report.kept_lossy,
        }


class EmbeddingScorer:
    """Scores candidates by the expected agreement of their label decisions with fp32's on
    ``texts`` (int8 texts against fp32 label vectors, as the runtime runs them); single changes
    by how far they move the vectors of ``statistics_texts`` (mean 1 - cosine with fp32)."""

    ladder = EMBEDDING_LADDER
    rank_per_weight = True
    format = EmbeddingFormat()

    def __init__(self, bundle_dir: Path, source: Path, *, texts: Sequence[str], statistics_texts: Sequence[str],
                 label_sets: Sequence[Sequence[str]], template: str, external_data: bool) -> None:
        self._bundle_dir, self._source, self._texts, self._statistics_texts = bundle_dir, source, texts, statistics_texts
        self._label_sets, self._template, self._external_data = label_sets, template, external_data
        self._reference = label_cosines(bundle_dir, source, texts, label_sets, template)
        self._reference_vectors: np.ndarray | None = None
        self.statistics_source = f"{len(statistics_texts)} texts and the label hypotheses"

    def statistics(self, model: Any, activations: Sequence[str], work: Path) -> dict[str, ActivationStats]:
        """Statistics of every weight MatMul's input (the ``activations`` the search asks for),
        over the statistics texts and the label hypotheses, as ``statistics`` computes them."""
        return statistics(self._bundle_dir, self._source, model, self._statistics_texts, self._label_sets,
                          self._template, self._external_data)

    def probe(self, model: Any, outputs: Sequence[str], work: Path, consume: Callable[[str, np.ndarray], None]) -> None:
        """Run ``model`` on the statistics texts and label hypotheses with ``outputs`` exposed."""
        probe(self._bundle_dir, self._source, model, outputs, consume, texts=self._statistics_texts,
              label_sets=self._label_sets, template=self._template, external_data=self._external_data)

    def score(self, path: Path) -> Score:
        cosines = label_cosines(self._bundle_dir, path, self._texts, self._label_sets, self._template,
                                label_model=self._source)
        top1, order = agreement(self._reference, cosines)
        expected, sigma = expected_agreement(self._reference, cosines)
        return Score(expected, {"top1_agreement": top1, "margin_shift_rms": sigma, "label_order_agreement": order})

    def change_error(self, path: Path) -> float:
        if self._reference_vectors is None:
            self._reference_vectors = self._vectors(self._source)
        return float(np.mean(1.0 - np.sum(self._vectors(path) * self._reference_vectors, axis=1)))

    def summary(self, result: CandidateResult, report: GuardReport) -> str:
        measures = result.measures
        return (f"      int8 {result.config.name!r}: expected agreement {result.heldout_agreement:.2%} "
                f"(margin shift rms {measures['margin_shift_rms']:.4f}), counted top-1 {measures['top1_agreement']:.2%}, "
                f"label order {measures['label_order_agreement']:.2%}")

    def _vectors(self, path: Path) -> np.ndarray:
        """Unit sentence vectors of the statistics texts through the runtime, on ``path``."""
        scorer = load_embedding_scorer(read_bundle(self._bundle_dir), path, max_length=None, providers=None,
                                       threads=None, session_options=None)
        out = scorer.embed(self._statistics_texts, batch_size=32, max_tokens=CPU_MAX_BATCH_TOKENS)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def guard_int8(
    bundle_dir: Path,
    source: Path,
    target: Path,
    *,
    texts: Sequence[str],
    statistics_texts: Sequence[str],
    label_sets: Sequence[Sequence[str]],
    template: str,
    min_agreement: float,
    keep_lossy: bool,
    external_data: bool,
    candidates: Sequence[QuantConfig] = EMBEDDING_CANDIDATES,
    progress: Progress | None = None,
) -> GuardReport:
    """The int8 search (``search``) of an embedding body ``source``: statistics from
    ``statistics_texts`` and the label hypotheses, each candidate judged on ``texts`` (held out
    from the statistics); the first whose expected agreement reaches ``min_agreement`` is left
    at ``target`` (with ``keep_lossy``, the most faithful one when none passes)."""
    scorer = EmbeddingScorer(bundle_dir, source, texts=texts, statistics_texts=statistics_texts,
                             label_sets=label_sets, template=template, external_data=external_data)
    report = GuardReport(min_agreement, scorer.format, {"decisions": len(texts) * len(label_sets)},
                         fp32_size=size_with_data(source))
    return search(source, target, scorer, report, candidates=candidates, keep_lossy=keep_lossy,
                  external_data=external_data, progress=progress)
