"""zsl-serve's model runner: merged requests, even with different labels, templates and endpoints,
each get what the same request gets alone in process, bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from test_embedding_runtime import FakeEncoder, make

from zsl_onnx import InvalidInputError, ZeroShotClassifier
from zsl_onnx.serve.runner import Work, make_runner, merge_key

pytestmark = pytest.mark.serve

TEXTS = ["the match went to extra time", "stocks fell sharply", "a man plays guitar in the park " * 3, "hi",
         "parliament voted on the new law", "rain again"]


class WideEncoder(FakeEncoder):
    """384-wide vectors, as real models give: wide enough that a matrix product over several rows
    takes another BLAS kernel than over one row."""

    def __init__(self) -> None:
        super().__init__()
        self.table = np.random.default_rng(1).normal(size=(400, 384)).astype(np.float32)


def alone(clf: ZeroShotClassifier, work: Work) -> Any:
    """The request made alone in process, as the route would answer it (one result per text)."""
    if work.endpoint == "embed":
        return clf.embed(work.texts).tolist()
    labels = work.labels if isinstance(work.labels, str) else list(work.labels or ())
    options = {"hypothesis_template": work.template, "multi_label": work.multi_label}
    if work.endpoint == "classify":
        return clf(work.texts, labels, **options)
    return clf.scores(work.texts, labels, **options).tolist()


def requests(endpoints: tuple[str, ...]) -> list[Work]:
    """Requests that differ in texts, labels (lists and comma strings), template and multi-label."""
    label_sets: list[Any] = [("sports", "business", "music"), "music, politics", ("weather",), ("sports", "business", "music")]
    works = []
    for i, endpoint in enumerate(endpoints * 3):
        texts = TEXTS[i % 5 : i % 5 + 1 + i % 2]
        if endpoint == "embed":
            works.append(Work("embed", texts))
        else:
            works.append(Work(endpoint, texts, label_sets[i % 4], None if i % 3 else "It is about {}.", i % 5 == 1))
    return works


def merged(clf: ZeroShotClassifier, works: list[Work]) -> list[Any]:
    """Each key's requests in one runner call, as the batcher merges them."""
    run = make_runner(clf)
    groups: dict[Any, list[int]] = {}
    for i, work in enumerate(works):
        groups.setdefault(merge_key(clf.kind, work), []).append(i)
    out: list[Any] = [None] * len(works)
    for key, members in groups.items():
        for i, result in zip(members, run(key, [works[i] for i in members])):
            out[i] = result
    return out


def test_merged_embedding_requests_equal_each_alone_bit_for_bit():
    clf = make(encoder=WideEncoder())
    works = requests(("classify", "scores", "embed"))
    assert len({merge_key(clf.kind, work) for work in works}) == 1  # every request may merge
    assert merged(clf, works) == [alone(clf, work) for work in works]


@pytest.mark.parametrize("variant", ["int8", "fp32"])
def test_merged_nli_requests_with_different_labels_equal_each_alone_bit_for_bit(bert_bundle: Path, variant: str):
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant=variant, threads=1)
    works = requests(("classify", "scores"))
    keys = [merge_key(clf.kind, work) for work in works]
    assert len(set(keys)) < len(works) and len({w.labels for w in works if merge_key(clf.kind, w) == keys[2]}) > 1
    assert merged(clf, works) == [alone(clf, work) for work in works]


def test_a_bad_request_fails_the_merged_call_and_alone_gives_its_own_error():
    clf = make()
    run = make_runner(clf)
    good, bad = Work("scores", ["fine text"], ("a", "b")), Work("scores", ["other text"], ("a", "a"))
    with pytest.raises(InvalidInputError, match="twice"):
        run("embedding", [good, bad])
    assert run("embedding", [good]) == [alone(clf, good)]
