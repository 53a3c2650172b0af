"""zsl_onnx.classify is an application over the runtime: public names and internals only, no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import zsl_onnx.classify

PACKAGE = Path(zsl_onnx.classify.__file__).parent


def imports(path: Path) -> list[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved within the package)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1:
                base = f"zsl_onnx.classify.{base}" if base else "zsl_onnx.classify"
            elif node.level == 2:
                base = f"zsl_onnx.{base}" if base else "zsl_onnx"
            names.append(base)
    return names


def test_the_application_imports_no_private_runtime_module():
    private = {
        f"{path.name}: {name}"
        for path in PACKAGE.glob("*.py")
        for name in imports(path)
        if name.startswith("zsl_onnx.") and name.split(".")[1].startswith("_")
    }
    assert not private, private


def test_the_application_modules_import_no_cycle():
    graph = {
        path.stem: {name.rsplit(".", 1)[1] for name in imports(path) if name.startswith("zsl_onnx.classify.")}
        for path in PACKAGE.glob("*.py")
    }
    assert graph["parquet"] and graph["readers"]  # the graph is read, not empty

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph.get(start, ()))

    cycles = sorted(module for module in graph if reaches(module, module, {module}))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_the_ray_mapper_shares_the_writers_without_loading_the_command():
    code = ("import sys, zsl_onnx.ray; "
            "assert 'zsl_onnx.classify.writers' in sys.modules; "
            "assert 'zsl_onnx.classify.run' not in sys.modules and 'zsl_onnx.classify.cli' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_python_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "zsl_onnx.classify", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"zsl-classify {zsl_onnx.__version__}", done.stderr
