"""Hostile request bodies for zsl-serve's fuzz test, from a seeded RNG: the same 1,000 every run."""

from __future__ import annotations

import json
import random
from typing import Any

__all__ = ["fuzz_body"]


def fuzz_body(rng: random.Random) -> bytes:
    """A hostile body: random JSON, wrong types, huge strings, deep nesting, bad UTF-8, random bytes."""
    kind = rng.randrange(8)
    if kind == 0:
        return json.dumps(_random_json(rng, 4)).encode()
    if kind == 1:
        body = {"sequences": _random_json(rng, 2), "candidate_labels": _random_json(rng, 2),
                "hypothesis_template": _random_json(rng, 1), "multi_label": _random_json(rng, 1)}
        return json.dumps({k: v for k, v in body.items() if rng.random() < 0.8}).encode()
    if kind == 2:
        size = rng.choice([1000, 30000, 60000, 100000])
        return json.dumps({"sequences": "word " * (size // 5), "candidate_labels": ["a", "b"]}).encode()
    if kind == 3:
        depth = rng.choice([50, 1000, 100000])
        return b"[" * depth + b"]" * depth if rng.random() < 0.5 else b'{"a":' * depth + b"1" + b"}" * depth
    if kind == 4:
        return b'{"sequences": "' + bytes(rng.randrange(128, 256) for _ in range(20)) + b'", "candidate_labels": "a"}'
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    if kind == 6:
        weird = rng.choice(["{}{}", "{0}", "{x}", "{", "}", "\u200b", "\ud800", "", " ", "{}" * 300, "\x00"])
        return json.dumps({"sequences": [rng.choice(["ok", weird])], "candidate_labels": [rng.choice(["a", weird]), "b"],
                           "hypothesis_template": rng.choice([None, weird, "x {} " + weird])}).encode()
    return json.dumps({"sequences": rng.choice(["t", ["t", "t"], [], [""]]), "candidate_labels": ["a", "a"]}).encode()


def _random_json(rng: random.Random, depth: int) -> Any:
    choices = [None, True, 1, -2.5, 10**30, "s", "\u00e9\u4e2d", [], {}]
    if depth <= 0 or rng.random() < 0.4:
        return rng.choice(choices)
    if rng.random() < 0.5:
        return [_random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["sequences", "candidate_labels", "multi_label", "x"]): _random_json(rng, depth - 1)
            for _ in range(rng.randrange(4))}
