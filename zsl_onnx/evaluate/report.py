"""The evaluation for people: a terminal summary, and a PNG with two panels.

Both read only the summary dict that ``--json`` prints, so the three outputs cannot disagree.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .errors import EvaluationError
from .metrics import TABLE_STEP, GRID

__all__ = ["check_report_path", "draw_report", "render_text"]


def render_text(summary: dict[str, Any]) -> str:
    """The headline numbers, per-label metrics, the confusion matrix and the threshold table."""
    lines = [*_headline(summary), "", *_per_label(summary), ""]
    if summary["multi_label"]:
        lines += [f"per label at score >= {summary['decision_threshold']}: tp fp fn tn"]
        lines += [f"  {label}: {c['tp']} {c['fp']} {c['fn']} {c['tn']}" for label, c in summary["confusion_matrix"].items()]
    else:
        lines += _confusion(summary["confusion_matrix"])
    lines += ["", *_table("top label", summary["thresholds"], summary)]
    for label, per in summary.get("per_label_thresholds", {}).items():
        best = per["recommended"]
        lines.append(f"label {label!r}: recommended threshold "
                     + (f"{best['threshold']:.4f} (coverage {best['coverage']:.3f}, precision {best['precision']:.3f})"
                        if best else f"none reaches {summary['target_precision']}"))
    return "\n".join(lines) + "\n"


def _headline(summary: dict[str, Any]) -> list[str]:
    records = summary["records"]
    joined = f"{summary['n']} records with gold labels of {records['predictions']} predictions"
    if records["gold"] is not None:
        joined += (f"; gold export: {records['gold']} annotated, {records['gold_without_prediction']} without a "
                   f"prediction, {records['gold_skipped']} skipped")
    accuracy = "exact-match accuracy" if summary["multi_label"] else "accuracy"
    return [joined, f"{accuracy} {summary['accuracy']:.4f}   macro-F1 {summary['macro_f1']:.4f}"]


def _per_label(summary: dict[str, Any]) -> list[str]:
    width = max([5, *(len(label) for label in summary["per_label"])])
    lines = [f"{'label':<{width}}  precision  recall      f1  support"]
    for label, m in summary["per_label"].items():
        lines.append(f"{label:<{width}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:6.4f}  {m['support']:7d}")
    return lines


def _confusion(matrix: dict[str, Any]) -> list[str]:
    labels = matrix["labels"]
    width = max([4, *(len(label) for label in labels)])
    cells = max([5, *(min(12, len(label)) for label in labels), *(len(str(c)) for row in matrix["rows"] for c in row)])
    lines = ["confusion matrix (rows: gold, columns: predicted)",
             " " * width + "  " + " ".join(f"{label[:cells]:>{cells}}" for label in labels)]
    for label, row in zip(labels, matrix["rows"]):
        lines.append(f"{label:<{width}}  " + " ".join(f"{c:>{cells}d}" for c in row))
    return lines


def _table(what: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    target = summary["target_precision"]
    lines = [f"bulk labelling by {what} score (precision target {target}, on the 95% Wilson lower bound)",
             "threshold  coverage  records  precision  95% interval"]
    best = summary["recommended_threshold"]
    for row in rows:
        step = round(row["threshold"] * GRID)
        if step % TABLE_STEP and row["threshold"] != best:
            continue  # the full table is in --json; the terminal shows the 0.05 grid
        if row["records"]:
            interval = f"[{row['precision_low']:.3f}, {row['precision_high']:.3f}]"
            precision = f"{row['precision']:9.4f}"
        else:
            interval, precision = "", "        -"
        mark = "  <- recommended" if row["threshold"] == best else ""
        lines.append(f"{row['threshold']:9.4f}  {row['coverage']:8.4f}  {row['records']:7d}  {precision}  {interval}{mark}")
    lines.append(
        f"recommended threshold: {best:.4f} (coverage {summary['coverage']:.4f}, precision {summary['precision']:.4f}, "
        f"95% interval [{summary['precision_low']:.3f}, {summary['precision_high']:.3f}])"
        if best is not None else f"recommended threshold: none; no threshold's lower bound reaches {target}"
    )
    return lines


def check_report_path(path: Path) -> None:
    """Refuse a report matplotlib cannot write, before any data is read."""
    if importlib.util.find_spec("matplotlib") is None:
        raise EvaluationError("--report needs matplotlib: pip install 'zsl-onnx[report]' (or pip install matplotlib)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    extension = path.suffix.lower().lstrip(".")
    if extension not in supported:
        raise EvaluationError(f"--report {path}: matplotlib cannot write {extension or 'a file without extension'!r}; "
                              f"use one of {', '.join(sorted(supported))}")
    if not path.parent.is_dir():
        raise EvaluationError(f"--report {path}: the directory {path.parent} does not exist")


def draw_report(summary: dict[str, Any], path: Path) -> None:
    """Precision against coverage (with the Wilson band and the target), and the confusion matrix."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(figure)
    _draw_curve(figure.add_subplot(1, 2, 1), summary)
    _draw_confusion(figure.add_subplot(1, 2, 2), summary)
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise EvaluationError(f"cannot write --report {path}: {exc.strerror or exc}") from None


def _draw_curve(axes: Any, summary: dict[str, Any]) -> None:
    rows = sorted((r for r in summary["thresholds"] if r["records"]), key=lambda r: r["coverage"])
    coverage = [r["coverage"] for r in rows]
    axes.fill_between(coverage, [r["precision_low"] for r in rows], [r["precision_high"] for r in rows],
                      alpha=0.25, label="95% Wilson interval")
    axes.plot(coverage, [r["precision"] for r in rows], marker=".", label="precision")
    axes.axhline(summary["target_precision"], color="grey", linestyle="--", label="target")
    if summary["recommended_threshold"] is not None:
        axes.plot([summary["coverage"]], [summary["precision"]], "o", color="black",
                  label=f"recommended: score >= {summary['recommended_threshold']:.4f}")
    axes.set(xlabel="coverage (share of records at or above the threshold)", ylabel="precision of the top label",
             xlim=(0, 1.02), ylim=(0, 1.02), title="bulk labelling by top score")
    axes.legend(loc="lower left")


def _draw_confusion(axes: Any, summary: dict[str, Any]) -> None:
    matrix = summary["confusion_matrix"]
    if summary["multi_label"]:
        labels = list(matrix)
        rows = [[matrix[label][k] for k in ("tp", "fp", "fn", "tn")] for label in labels]
        columns, ylabel = ["tp", "fp", "fn", "tn"], "label"
    else:
        labels, rows, columns, ylabel = matrix["labels"], matrix["rows"], matrix["labels"], "gold"
    axes.imshow(rows, cmap="Blues")
    axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", fontsize=8)
    axes.set(ylabel=ylabel, xlabel="" if summary["multi_label"] else "predicted", title="confusion matrix")
