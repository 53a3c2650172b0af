"""What a fresh install shows: --help and --version everywhere, the license, the project metadata."""

import subprocess
import sys
from pathlib import Path

import pytest

from zsl_onnx import __version__
from zsl_onnx.classify.cli import main as classify_main

REPO = Path(__file__).resolve().parents[1]


def python_m(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zsl_onnx", *args], capture_output=True, text=True, timeout=60)


def test_python_m_zsl_onnx_help_version_and_bad_flag():
    shown = python_m("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: python -m zsl_onnx")
    assert "zsl-classify" in shown.stdout and "providers" in shown.stdout
    assert "available providers" not in shown.stdout  # --help only helps
    assert python_m("--version").stdout.strip() == f"zsl-onnx {__version__}"
    wrong = python_m("--bogus")
    assert wrong.returncode == 2 and "unrecognized arguments: --bogus" in wrong.stderr


def test_zsl_classify_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        classify_main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"zsl-classify {__version__}"


@pytest.mark.export
def test_zsl_export_version(capsys):
    pytest.importorskip("torch")
    from zsl_onnx_export._cli import main as export_main

    with pytest.raises(SystemExit) as exit_info:
        export_main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"zsl-export {__version__}"


def test_license_file_is_the_apache_2_text_pyproject_declares():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"] and "END OF TERMS AND CONDITIONS" in text
    assert {"Homepage", "Repository", "Documentation", "Issues"} <= set(project["urls"])
    assert "Typing :: Typed" in project["classifiers"]
