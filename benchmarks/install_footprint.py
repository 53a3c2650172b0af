"""Install footprint: a fresh runtime-only venv vs a venv with torch and transformers.

Usage:
    python benchmarks/install_footprint.py [--workdir DIR]

Creates two throwaway venvs (needs pip access to PyPI; torch is the pinned 2.13.0 CPU wheel)
and reports `du` of each: zsl-onnx's runtime install (this repo, no extras) against what the
transformers pipeline needs (torch + transformers + tokenizers). Results: benchmarks/results/footprint/footprint.{json,md}.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from common import REPO, RESULTS, environment, write_results

SETUPS = {
    "zsl-onnx runtime (pip install zsl-onnx)": [str(REPO)],
    "transformers pipeline (torch==2.13.0 CPU + transformers)": ["torch==2.13.0", "transformers>=4.45,<4.58"],
}


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for name, packages in SETUPS.items():
            env_dir = Path(tmp) / f"venv{len(rows)}"
            venv.create(env_dir, with_pip=True)
            base = du_mb(env_dir)
            python = env_dir / "bin" / "python"
            subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
            total = du_mb(env_dir)
            rows.append({"setup": name, "venv_mb": round(total), "installed_mb": round(total - base)})
            print(rows[-1], flush=True)
    ratio = rows[1]["venv_mb"] / rows[0]["venv_mb"]
    lines = ["| setup | venv MB (du) | installed packages MB |", "|---|---|---|"]
    lines += [f"| {r['setup']} | {r['venv_mb']} | {r['installed_mb']} |" for r in rows]
    markdown = (f"Install footprint (fresh venvs, Python {sys.version.split()[0]}): the pipeline's venv is "
                f"{ratio:.1f}x zsl-onnx's\n\n" + "\n".join(lines))
    write_results("footprint", {"environment": environment(1), "rows": rows}, markdown, RESULTS / "footprint")


if __name__ == "__main__":
    main()
