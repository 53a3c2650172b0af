"""The README and docs/ stay short, true to the tree, and about the product only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Development history (numbered work sessions or tracker items) has no place in the product.
WORK_ITEM = re.compile(r"\b(?:session|issue)s?\s*#?\d+", re.IGNORECASE)
OUTSIDE_NOTES = "shared/" + "notes"
LINE_REFERENCE = re.compile(r"\b\w+\.py:\d+")  # "_graph.py:7" goes stale with the next edit


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc}); the tracked files cannot be listed")
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 160, f"README.md has {lines} lines; move details to docs/"


def test_readme_first_code_block_sets_up_and_runs_the_tests() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```[a-z]*\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no code block"
    block = match.group(1)
    assert "pip install" in block, f"the first code block does not set up an environment:\n{block}"
    assert re.search(r"python -m pytest|\bpytest\b", block), f"the first code block does not run the tests:\n{block}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name} links to missing files: {broken}"


def test_readme_links_every_docs_page() -> None:
    text = README.read_text(encoding="utf-8")
    orphans = [page.name for page in DOCS if f"docs/{page.name}" not in text]
    assert not orphans, f"README.md does not link {orphans}; add them to its Documentation list"


def test_no_work_item_or_outside_file_references() -> None:
    found = []
    for path in tracked_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: plots, archives
        for number, line in enumerate(text.splitlines(), 1):
            if WORK_ITEM.search(line) or LINE_REFERENCE.search(line) or OUTSIDE_NOTES in line:
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not found, "development history, line references or notes outside the repository:\n" + "\n".join(found)


def test_design_layout_names_every_module() -> None:
    layout = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    missing = [
        f"{package}/{module.name}"
        for package in ("zsl_onnx", "zsl_onnx_export")
        for module in sorted((REPO / package).glob("*.py"))
        if not re.search(rf"^\s+{re.escape(module.name)}\s", layout, re.MULTILINE)
    ]
    assert not missing, f"docs/design.md's layout tree lacks a line for: {missing}"
