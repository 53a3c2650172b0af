"""Rebuild tests/data/tiny-bert/, the small bundle (fp32 + guarded int8) the runtime tests load.

Usage (needs the [export] extra):  python tests/make_tiny_bundle.py [--output DIR]

How it is made: ``tiny_models.build_model("bert")``, a 2-layer, 32-wide BERT with random
weights (torch seed 0), labels entailment/neutral/contradiction and the fixed WordPiece
vocabulary of data/tiny_vocab.json, exported by ``zsl_onnx_export.export_bundle`` with a
119-pair slice of the built-in calibration set (``tiny_models.write_calibration``) and one
thread. The bundle is committed (about 300 kB) so that the runtime tests need neither torch
nor an export; test_tiny_bundle.py checks that rebuilding it gives the same results.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TINY_BUNDLE = TESTS / "data" / "tiny-bert"
SOURCE_NAME = "tiny-bert"  # recorded in the manifest as the source model


def build_tiny_bundle(output: Path, *, overwrite: bool = False) -> Path:
    """Build the tiny BERT and export it to ``output``; returns ``output``."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from tiny_models import build_model, write_calibration

    from zsl_onnx_export import export_bundle

    output = Path(output).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_model("bert", work / SOURCE_NAME)
        calibration = write_calibration(work / "calibration.jsonl")
        here = Path.cwd()
        os.chdir(work)  # a relative source path keeps this machine's paths out of the manifest
        try:
            export_bundle(SOURCE_NAME, output, calibration_file=calibration.name, threads=1, overwrite=overwrite)
        finally:
            os.chdir(here)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=TINY_BUNDLE)
    args = parser.parse_args()
    print(f"wrote {build_tiny_bundle(args.output, overwrite=True)}")


if __name__ == "__main__":
    main()
