"""zsl-export never destroys its source, cleans up after killed exports, refuses a NaN tolerance,
works offline from the Hugging Face cache, and says what to install in a runtime-only install."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from zsl_onnx.internals import LOCK_SUFFIX, FileLock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_runtime_only_install_gets_one_line_saying_what_to_install(tmp_path):
    blocker = textwrap.dedent(
        """
        import sys

        class NoExportExtra:  # what a runtime-only install looks like to the import system
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers", "optimum", "onnx"):
                    raise ModuleNotFoundError(name)
                return None

        sys.meta_path.insert(0, NoExportExtra())
        from zsl_onnx_export._cli import main
        sys.exit(main(["org/model", "-o", sys.argv[1]]))
        """
    )
    done = subprocess.run([sys.executable, "-c", blocker, str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        'zsl-export: error: exporting needs torch, transformers, optimum, onnx: pip install "zsl-onnx[export]"'
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("atol", ["nan", "inf", "-1"])
def test_non_finite_or_negative_atol_is_refused(atol, capsys):
    from zsl_onnx_export._cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["m", "-o", "out", "--atol", atol])
    assert "finite number of at least 0" in capsys.readouterr().err


# -- below: the export extra is needed -----------------------------------------------------------

export = pytest.mark.export


@pytest.fixture(scope="module")
def bert_source(tiny_models):
    pytest.importorskip("torch")
    return tiny_models("bert", int8=False).source


@export
@pytest.mark.parametrize("atol", [float("nan"), float("inf"), -1.0])
def test_export_bundle_refuses_a_bad_atol_before_any_work(bert_source, tmp_path, atol):
    from zsl_onnx_export import ExportError, export_bundle

    with pytest.raises(ExportError, match="atol must be a finite number"):
        export_bundle(bert_source, tmp_path / "out", atol=atol)
    assert not (tmp_path / "out").exists()


@export
@pytest.mark.parametrize("where", ["the source itself", "inside the source", "around the source"])
def test_output_may_not_be_the_source_inside_it_or_around_it(bert_source, tmp_path, capsys, where):
    from zsl_onnx_export._cli import main

    source = tmp_path / "work" / "model"
    source.parent.mkdir()
    import shutil

    shutil.copytree(bert_source, source)
    before = sorted(p.name for p in source.iterdir())
    output = {"the source itself": source, "inside the source": source / "bundle", "around the source": source.parent}[where]
    assert main([str(source), "-o", str(output), "--overwrite", "--quantize", "none"]) == 1
    assert "source model directory" in capsys.readouterr().err
    assert sorted(p.name for p in source.iterdir()) == before
    assert any(name.endswith(".safetensors") for name in before)


@export
def test_stale_staging_of_a_killed_export_is_removed_and_nothing_else(bert_source, tmp_path):
    from zsl_onnx_export import export_bundle

    out = tmp_path / "bundle"
    killed = tmp_path / ".bundle.partial-dead1"  # a killed export: its lock is left, nobody holds it
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"half")
    (tmp_path / (killed.name + LOCK_SUFFIX)).write_text("pid 999999 on elsewhere\n")
    unknown = tmp_path / ".bundle.partial-nolock"  # no lock beside it: not provably ours
    unknown.mkdir()
    running = tmp_path / ".bundle.partial-live"  # an export that is still running
    running.mkdir()
    with FileLock(running):
        export_bundle(bert_source, out, quantize_int8=False)
        assert not killed.exists() and not (tmp_path / (killed.name + LOCK_SUFFIX)).exists()
        assert unknown.is_dir() and running.is_dir()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [".bundle.partial-live", ".bundle.partial-nolock", "bundle"]  # no lock, no staging of ours
    assert not any(p.name.startswith(".optimum-") for p in tmp_path.iterdir())


@export
def test_export_offline_from_the_hugging_face_cache(bert_source, tmp_path, monkeypatch):
    import huggingface_hub
    from test_bundle import COMMIT, hub_file

    from zsl_onnx_export._cli import main

    cache = tmp_path / "cache"
    for path in bert_source.rglob("*"):
        if path.is_file():
            hub_file(cache, "org/tiny-nli", bert_source, path.relative_to(bert_source).as_posix())
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("network call"))
    out = tmp_path / "out"
    assert main(["org/tiny-nli", "-o", str(out), "--offline", "--cache-dir", str(cache), "--quantize", "none"]) == 0
    manifest = json.loads((out / "zsl_onnx.json").read_text())
    assert manifest["source"]["revision"] == COMMIT


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_an_export_killed_between_its_renames_gets_the_old_bundle_back(tmp_path, monkeypatch):
    """The window inside move_into_place: the old bundle renamed away, the new one not yet in
    place. The next export restores the old bundle before it checks the output."""
    from pathlib import Path

    from zsl_onnx_export._staging import move_into_place, restore_retired

    out, staging = tmp_path / "bundle", tmp_path / ".bundle.partial-x"
    out.mkdir()
    (out / "zsl_onnx.json").write_text("old")
    staging.mkdir()
    (staging / "zsl_onnx.json").write_text("new")
    real_rename = Path.rename

    def killed_after_first_rename(self, target):
        if self == staging:
            raise KeyboardInterrupt  # the process dies here
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        move_into_place(staging, out)
    monkeypatch.undo()
    assert not out.exists()
    (retired,) = tmp_path.glob(".bundle.old-*")
    retired.rename(tmp_path / f".bundle.old-{_dead_pid()}")  # as if from a process that is gone

    messages = restore_retired(out)
    assert (out / "zsl_onnx.json").read_text() == "old" and len(messages) == 1 and "restored" in messages[0]
    assert not list(tmp_path.glob(".bundle.old-*"))
    assert restore_retired(out) == []  # nothing left to do


def test_retired_leftovers_beside_a_bundle_in_place_are_removed_and_live_swaps_left_alone(tmp_path):
    from zsl_onnx_export._staging import restore_retired

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "zsl_onnx.json").write_text("new")
    done = tmp_path / f".bundle.old-{_dead_pid()}"  # killed during the final delete
    done.mkdir()
    running = tmp_path / f".bundle.old-{os.getppid()}"  # a live process mid-swap
    running.mkdir()
    other = tmp_path / f".bundle2.old-{_dead_pid()}"  # another output's: not ours to touch
    other.mkdir()
    messages = restore_retired(out)
    assert not done.exists() and running.is_dir() and other.is_dir()
    assert (out / "zsl_onnx.json").read_text() == "new" and len(messages) == 1


@export
def test_export_restores_an_interrupted_swap_before_checking_its_output(bert_source, tmp_path):
    from zsl_onnx_export import ExportError, export_bundle

    retired = tmp_path / f".bundle.old-{_dead_pid()}"
    retired.mkdir()
    (retired / "zsl_onnx.json").write_text("old")
    said = []
    with pytest.raises(ExportError, match="not empty"):  # the old bundle is back, so no silent replace
        export_bundle(bert_source, tmp_path / "bundle", quantize_int8=False, progress=said.append)
    assert (tmp_path / "bundle" / "zsl_onnx.json").read_text() == "old" and not retired.exists()
    assert any("restored" in line for line in said)
