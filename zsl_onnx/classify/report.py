"""What a run counts, and how it is shown: the summary on stderr and the ``--report`` PNG.

The counts travel in every checkpoint (``Stats.to_json``), so a resumed run's summary and
report cover the whole input, not only the part after the resume. matplotlib is optional
and imported only to draw.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_onnx import InvalidInputError

from .safefiles import new_temp, publish

__all__ = ["BINS", "Stats", "draw_report", "require_matplotlib", "summary"]

BINS = 10


@dataclass
class Stats:
    read: int = 0
    classified: int = 0
    rejected: int = 0
    written: int = 0
    top_labels: Counter[str] = field(default_factory=Counter)
    histogram: list[int] = field(default_factory=lambda: [0] * BINS)
    first_reject: str | None = None
    truncated: int = 0  # records truncation cut (--long-text truncate)
    dropped: int = 0  # tokens it left unread, over all records
    labels_seen: list[str] = field(default_factory=list)  # --labels-field: every label, first seen first

    def to_json(self) -> dict[str, Any]:
        """The counts for a checkpoint; the newer ones only when they are not empty (older state files
        lack them, and a run that needs none of them writes the state it always wrote)."""
        data = {**{k: getattr(self, k) for k in ("read", "classified", "rejected", "written")},
                "top_labels": dict(self.top_labels), "histogram": self.histogram, "first_reject": self.first_reject}
        if self.truncated:
            data.update(truncated=self.truncated, dropped=self.dropped)
        if self.labels_seen:
            data["labels_seen"] = self.labels_seen
        return data

    @classmethod
    def from_json(cls, data: Any) -> Stats:
        """The counts of a checkpoint; ValueError when they are malformed or contradict each other."""
        counts = [data.get(k) for k in ("read", "classified", "rejected", "written")] if isinstance(data, dict) else []
        if len(counts) != 4 or not all(_count(c) for c in counts):
            raise ValueError("the record counts are missing or not whole numbers")
        tops, histogram, first = data.get("top_labels"), data.get("histogram"), data.get("first_reject")
        if not (isinstance(tops, dict) and all(isinstance(k, str) and _count(v) for k, v in tops.items())):
            raise ValueError("the top-label counts are malformed")
        if not (isinstance(histogram, list) and len(histogram) == BINS and all(_count(c) for c in histogram)):
            raise ValueError("the score histogram is malformed")
        if first is not None and not isinstance(first, str):
            raise ValueError("the first reject is malformed")
        truncated, dropped, seen = data.get("truncated", 0), data.get("dropped", 0), data.get("labels_seen", [])
        if not (_count(truncated) and _count(dropped) and truncated <= counts[1]):
            raise ValueError("the truncation counts are malformed")
        if not (isinstance(seen, list) and all(isinstance(label, str) for label in seen)):
            raise ValueError("the labels seen are malformed")
        stats = cls(*counts, Counter(tops), list(histogram), first, truncated, dropped, list(seen))
        stats._check()
        return stats

    def _check(self) -> None:
        """Counts that one run cannot have written, named."""
        problems = [
            (self.classified + self.rejected != self.read, "classified + rejected records differ from records read"),
            (self.written > self.classified, "more records written than classified"),
            (sum(self.top_labels.values()) != self.classified, "the top-label counts do not add up to the classified records"),
            (sum(self.histogram) != self.classified, "the score histogram does not add up to the classified records"),
            ((self.first_reject is None) != (self.rejected == 0), "the first reject does not agree with the rejected count"),
        ]
        for bad, what in problems:
            if bad:
                raise ValueError(what)


def summary(stats: Stats, labels: list[str], rejects_path: Path | None) -> str:
    """Counts, the top-label distribution and the top-score histogram, as text bars."""
    lines = [f"records: {stats.read:,} read, {stats.classified:,} classified, {stats.rejected:,} rejected, "
             f"{stats.written:,} written"]
    if rejects_path is not None and stats.rejected:
        lines[0] += f" (rejects in {rejects_path})"
    if stats.truncated:
        lines.append(f"truncated: {stats.truncated:,} records did not fit the model and were cut ({stats.dropped:,} "
                     "tokens not read); --long-text chunk reads them whole")
    width = max((len(label) for label in labels), default=0)
    most = max(stats.top_labels.values(), default=0) or 1
    lines.append("top label:")
    for label in labels:
        count = stats.top_labels.get(label, 0)
        share = count / stats.classified if stats.classified else 0.0
        lines.append(f"  {label:<{width}} {count:>9,} {share:6.1%} {'#' * round(30 * count / most)}")
    lines.append("top score:")
    peak = max(stats.histogram) or 1
    for i, count in enumerate(stats.histogram):
        lines.append(f"  {i / BINS:.1f}-{(i + 1) / BINS:.1f} {count:>9,} {'#' * round(30 * count / peak)}")
    return "\n".join(lines)


def require_matplotlib(path: Path | None = None) -> None:
    """Fail before hours of classification, not after: matplotlib is there and can write ``path``'s format."""
    if importlib.util.find_spec("matplotlib") is None:
        raise InvalidInputError(
            "--report needs matplotlib: pip install 'zsl-onnx[report]' (or pip install matplotlib)."
        )
    if path is None:
        return
    from matplotlib.backend_bases import FigureCanvasBase

    known = sorted(FigureCanvasBase.get_supported_filetypes())
    if _report_format(path) not in known:
        raise InvalidInputError(
            f"--report {path}: the extension names no image format matplotlib can write; end the name in "
            f"one of {', '.join('.' + k for k in known)} (e.g. report.png)."
        )


def _report_format(path: Path) -> str:
    return path.suffix[1:].lower()


def draw_report(stats: Stats, labels: list[str], path: Path, replace: bool = False) -> None:
    """Draw into a new temporary file, then move it to ``path`` (replacing a file only with ``replace``)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.barh(labels[::-1], [stats.top_labels.get(label, 0) for label in labels[::-1]])
    left.set_title(f"Top label ({stats.classified:,} records)")
    left.set_xlabel("records")
    right.bar([i / BINS + 0.05 for i in range(BINS)], stats.histogram, width=0.09)
    right.set_title("Top score")
    right.set_xlabel("score")
    right.set_ylabel("records")
    fig.tight_layout()
    fd, temp = new_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, dpi=100, format=_report_format(path))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    publish(temp, path, replace, "report")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
