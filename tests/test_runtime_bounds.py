"""Inputs to the runtime API that used to run away or give a silently wrong answer."""

from __future__ import annotations

import pytest

from zsl_onnx import BundleError, InvalidInputError, ZeroShotClassifier
from zsl_onnx._pooling import PoolingConfig
from zsl_onnx._session import THREADS_PER_CORE, usable_cores

INVISIBLE = ["\u200b", "\u200b\u200c\u200d", "\ufeff \u2060", "\u00ad\n\u200e", "\x00\x01"]


@pytest.fixture(scope="module")
def clf(bert_bundle):
    return ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")


@pytest.mark.parametrize("text", INVISIBLE)
def test_a_text_of_invisible_characters_is_refused(clf, text):
    with pytest.raises(InvalidInputError, match=r"sequences\[0\] is empty or only whitespace or invisible"):
        clf(text, ["sports", "politics"])


@pytest.mark.parametrize("label", INVISIBLE)
def test_a_label_of_invisible_characters_is_refused(clf, label):
    with pytest.raises(InvalidInputError, match=r"candidate_labels\[1\] is empty or only invisible"):
        clf("a real text", ["sports", label])


def test_visible_text_around_invisible_characters_is_scored(clf):
    assert clf("\u200bgoal\u200b", ["sports", "politics"])["labels"]


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2", THREADS_PER_CORE * usable_cores() + 1, 1000])
def test_thread_counts_out_of_range_are_refused_before_loading(bert_bundle, threads):
    with pytest.raises(InvalidInputError, match=r"threads must be an integer from 1 to \d+"):
        ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32", threads=threads)


def test_the_largest_allowed_thread_count_loads(bert_bundle):
    limit = THREADS_PER_CORE * usable_cores()
    assert ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32", threads=limit).kind == "nli"


@pytest.mark.parametrize("field", ["normalize", "include_prompt"])
@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_pooling_flags_that_are_not_booleans_are_a_bundle_error(field, value):
    with pytest.raises(BundleError, match=f"embedding.pooling.{field} is"):
        PoolingConfig.from_json({"modes": ["mean"], field: value})


def test_pooling_flags_that_are_booleans_load():
    config = PoolingConfig.from_json({"modes": ["mean"], "normalize": True, "include_prompt": False})
    assert config.normalize is True and config.include_prompt is False
