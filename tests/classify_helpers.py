"""Small helpers the zsl-classify test files share: run the command, read and write JSONL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from zsl_onnx.classify.cli import main


class Crash(BaseException):
    """Stands for a kill: not an Exception, so nothing in the CLI handles it."""


def classify(*args) -> int:
    """zsl-classify in this process; arguments are turned into strings."""
    return main([str(a) for a in args])


def exe() -> str:
    """The zsl-classify console script of this Python (for tests that need a real process)."""
    beside = Path(sys.executable).parent / "zsl-classify"
    return str(beside) if beside.exists() else "zsl-classify"


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def read_jsonl(path) -> list:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
