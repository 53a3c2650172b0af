"""What one model call does for the requests the batcher merged, and which requests may merge.

Every request gets exactly what it gets alone in a Python process, bit for bit, so a merged
call shares only the work that does not change a request's numbers:

- NLI bundles: each (text, hypothesis) pair is scored on its own (per-row int8, fp32 on CPU),
  so one ``clf.scores`` call over all the texts, each with its request's labels (one label
  list per text), gives every request its own rows. Requests merge when they share the
  template and ``multi_label``; their labels may differ.
- Embedding bundles: the encoder pass is per text, so one ``clf.embed`` over all the texts
  gives each text its vector. The cosines are not: a matrix product over 5 rows need not give
  the bits it gives over 1 row (BLAS picks another kernel), so each request's scores are
  computed from its own rows only, as its call alone computes them. Any two requests merge.

A batch of one request is the Python call itself. Requests for ``/v1/classify`` get the
ranked dicts ``clf(...)`` returns, built from the same score rows it ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zsl_onnx import ZeroShotClassifier
from zsl_onnx.internals import (
    DEFAULT_BATCH_SIZE,
    build_hypotheses,
    parse_labels,
    ranked_result,
)

__all__ = ["Work", "make_runner", "merge_key"]

Labels = str | tuple[str, ...]


@dataclass(frozen=True)
class Work:
    """One request as the model sees it: its endpoint, texts and question."""

    endpoint: str  # "classify", "scores" or "embed"
    texts: list[str]
    labels: Labels | None = None
    template: str | None = None
    multi_label: bool = False


def merge_key(kind: str, work: Work) -> Hashable:
    """Requests with equal keys may share one model call (see the module docstring)."""
    if kind == "embedding":
        return "embedding"
    return ("nli", work.template, work.multi_label)


def make_runner(clf: ZeroShotClassifier) -> Callable[[Hashable, Sequence[Work]], list[Any]]:
    """The worker thread's job: one model call for merged requests, one answer per request
    (a list with one result per text)."""

    def run(key: Hashable, works: Sequence[Work]) -> list[Any]:
        rows = _embedding_rows(clf, works) if clf.kind == "embedding" else _nli_rows(clf, works)
        return [_answer(work, job_rows) for work, job_rows in zip(works, rows)]

    return run


def _nli_rows(clf: ZeroShotClassifier, works: Sequence[Work]) -> list[Sequence[np.ndarray]]:
    """Each request's score rows from one ``clf.scores`` call over all their texts."""
    first = works[0]
    texts = [text for work in works for text in work.texts]
    if all(work.labels == first.labels for work in works):
        labels: Any = _label_argument(first.labels)
    else:  # one label list per text: all pairs still run in one batched pass
        labels = [parse_labels(_label_argument(work.labels)) for work in works for _ in work.texts]
    rows = clf.scores(texts, labels, hypothesis_template=first.template, multi_label=first.multi_label)
    return _split(list(rows), works)


def _embedding_rows(clf: ZeroShotClassifier, works: Sequence[Work]) -> list[Sequence[np.ndarray]]:
    """One encoder pass over every text; then each request's own rows, scored as its call alone."""
    if len(works) == 1 and works[0].endpoint != "embed":
        work = works[0]
        return [clf.scores(work.texts, _label_argument(work.labels), hypothesis_template=work.template,
                           multi_label=work.multi_label)]
    vectors = _split(list(clf.embed([text for work in works for text in work.texts])), works)
    return [rows if work.endpoint == "embed" else _embedding_scores(clf, work, np.stack(rows))
            for work, rows in zip(works, vectors)]


def _embedding_scores(clf: ZeroShotClassifier, work: Work, vectors: np.ndarray) -> np.ndarray:
    """``clf.scores(work.texts, ...)`` from the texts' vectors: the same steps on the same rows."""
    template = work.template if work.template is not None else clf.hypothesis_template
    hypotheses = build_hypotheses(parse_labels(_label_argument(work.labels)), template)
    scorer: Any = clf.scorer
    return scorer.vector_scores(vectors, hypotheses, multi_label=work.multi_label, batch_size=DEFAULT_BATCH_SIZE,
                                max_tokens=clf.max_batch_tokens)


def _answer(work: Work, rows: Sequence[np.ndarray]) -> list[Any]:
    """The request's results, one per text, as the Python call returns them."""
    if work.endpoint != "classify":
        return [row.tolist() for row in rows]
    labels = parse_labels(_label_argument(work.labels))
    return [ranked_result(text, labels, row) for text, row in zip(work.texts, rows)]


def _label_argument(labels: Labels | None) -> str | list[str]:
    """The labels as the request gave them: a comma-separated string, or a list."""
    if labels is None:
        raise ValueError("a classify or scores request without labels reached the model")
    return labels if isinstance(labels, str) else list(labels)


def _split(rows: list[Any], works: Sequence[Work]) -> list[list[Any]]:
    """Rows of merged texts, cut back into each request's own rows."""
    out, start = [], 0
    for work in works:
        out.append(rows[start : start + len(work.texts)])
        start += len(work.texts)
    return out
