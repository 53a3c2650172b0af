"""``--resume`` checks that the state file agrees with the files it describes, not only with itself.

The hashes in a state file prove that the output and rejects files are unchanged up to the
checkpoint; they do not prove that the counts beside them are true. A hand-edited state whose
counts disagree with those bytes would make the resumed run skip or repeat records, or end with a
summary that lies, so every count is checked against the rows the checked bytes hold.
"""

from __future__ import annotations

from .checkpoint import Prefix, ResumeError, State
from .plan import Plan
from .report import Stats
from .writers import csv_header

__all__ = ["check_consistent"]


def check_consistent(plan: Plan, state: State, out: Prefix, rejects: Prefix | None) -> Stats:
    """The statistics of the checkpoint, once they agree with the output, the rejects and the columns."""
    try:
        stats = Stats.from_json(state.stats)
    except ValueError as exc:
        raise _disagree(plan, f"its statistics are inconsistent ({exc})") from None
    problem = _problem(plan, state, stats, out, rejects)
    if problem:
        raise _disagree(plan, problem)
    return stats


def _problem(plan: Plan, state: State, stats: Stats, out: Prefix, rejects: Prefix | None) -> str | None:
    if stats.read != state.records:
        return f"it counts {state.records} records consumed but {stats.read} read"
    known = set(plan.labels or stats.labels_seen)  # --labels-field: the labels the records named
    unknown = [label for label in stats.top_labels if label not in known]
    if unknown:
        return f"it counts top labels that are not among the labels ({len(unknown)} of them)"
    if plan.output_format in ("csv", "tsv"):
        if (state.columns is None) != (stats.written == 0):
            return "its CSV columns do not agree with the records written"
        header = b"" if state.columns is None else csv_header(state.columns, plan.output_format).encode("utf-8")
        if not (out.head.startswith(header) if len(header) <= len(out.head) else header.startswith(out.head)):
            return f"its CSV columns are not the header of {plan.output}"
        rows = out.rows - (state.columns is not None)
    else:
        if state.columns is not None:
            return f"it names CSV columns for a {plan.output_format} output"
        rows = out.rows
    if rows != stats.written:
        return f"it counts {stats.written} records written, {plan.output} holds {rows} up to the checkpoint"
    if rejects is None and stats.rejected:
        return f"it counts {stats.rejected} rejected records, but the run writes no rejects file"
    if rejects is not None and rejects.rows != stats.rejected:
        return f"it counts {stats.rejected} rejected records, {plan.rejects} holds {rejects.rows} up to the checkpoint"
    return None


def _disagree(plan: Plan, what: str) -> ResumeError:
    return ResumeError(
        f"The state file {plan.state} does not agree with the files it describes: {what}. It was edited, so "
        "resuming could skip, repeat or misalign records. Start again with --overwrite."
    )
