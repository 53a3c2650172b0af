"""Which per-row int8 design choices buy the fixture's agreement with fp32: GPTQ weight rounding,
SmoothQuant smoothing, both; and how much error is left in the weights alone.

Usage (from the repository root, a few minutes on 2 cores):
    python benchmarks/int8_error_sources.py [--model ../shared/fixtures/minilm-l6-sick-nli]
        [--threads 2] [--sick-limit N] [--results-dir DIR]

It exports the fp32 graph the exporter ships (head-token rewritten), collects the activation
statistics the guard collects (on the ranking third of the built-in calibration pairs), then
scores per-row int8 variants of every weight MatMul against fp32 by top-1 agreement on the
held-out calibration pairs and on SICK test:

- round to nearest: per-row activations, per-column 7-bit-safe weights rounded to nearest;
- GPTQ: the same scales, weights rounded by GPTQ on the ranking pairs' Hessians;
- SmoothQuant: activation channels divided by max|x|^0.5 / max|w|^0.5, weights multiplied;
- SmoothQuant + GPTQ: the guard's first candidate;
- weights only: the last one's int8 weights dequantized into the fp32 graph (fp32
  activations), i.e. what is left of the error without activation quantization.

Every variant runs through the runtime's inference loop (the guard's PairRunner).
Results: benchmarks/results/int8_error_sources/<CPU class>/int8_error_sources.{json,md}.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from common import FIXTURE, RESULTS_DIR_HELP, environment, machine_results_dir, sick_test, write_results

from zsl_onnx_export.internals import (
    FP32_FILE,
    CalibrationSet,
    PairRunner,
    QuantConfig,
    RowQuantizer,
    builtin_calibration,
    export_onnx,
    load_sequence_classifier,
    matmul_inputs,
    rewrite_file,
    save_model,
    weight_matmuls,
)

VARIANTS = {
    "round to nearest": QuantConfig("round to nearest", smooth_alpha=None, gptq=False),
    "GPTQ": QuantConfig("GPTQ", smooth_alpha=None, gptq=True),
    "SmoothQuant": QuantConfig("SmoothQuant", smooth_alpha=0.5, gptq=False),
    "SmoothQuant + GPTQ": QuantConfig("SmoothQuant + GPTQ", smooth_alpha=0.5, gptq=True),
}


def build_fp32(model: Path, work: Path) -> Path:
    """The fp32 graph the exporter ships, with the tokenizer and config beside it."""
    tokenizer, torch_model = load_sequence_classifier(model, trust_remote_code=False)
    export_onnx(torch_model, work)
    tokenizer.save_pretrained(work)
    torch_model.config.save_pretrained(work)
    rewrite_file(work / FP32_FILE)
    return work / FP32_FILE


def weights_only(model: Any, quantizer: RowQuantizer, config: QuantConfig) -> Any:
    """``model`` with each weight MatMul's int8 weight dequantized in place (fp32 activations)."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    by_name = {n.name: n for n in out.graph.node}
    inits = {i.name: i for i in out.graph.initializer}
    for name in quantizer.nodes:
        spec = quantizer.weights(config, name)
        value = spec.dequantized() / (1.0 if spec.smooth is None else spec.smooth[:, None])
        init = inits[by_name[name].input[1]]
        init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
    return out


def main() -> None:
    import onnx

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=FIXTURE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sick-limit", type=int, default=None, help="first N SICK test pairs (default: all)")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("int8_error_sources"))
    args = parser.parse_args()

    calibration = builtin_calibration()
    sick = sick_test()
    premises, hypotheses = sick.premises[: args.sick_limit], sick.hypotheses[: args.sick_limit]
    with tempfile.TemporaryDirectory(prefix="int8-error-") as tmp:
        work = Path(tmp)
        fp32_path = build_fp32(args.model, work)
        runners = {
            "held-out calibration": PairRunner(work, calibration, max_length=512, threads=args.threads),
            "SICK test": PairRunner(work, CalibrationSet(tuple(premises), tuple(hypotheses), "SICK test"),
                                    max_length=512, threads=args.threads),
        }
        subsets = {"held-out calibration": calibration.heldout, "SICK test": np.arange(len(premises))}
        reference = {name: runner.logits(fp32_path) for name, runner in runners.items()}
        model = onnx.load(str(fp32_path))
        nodes = weight_matmuls(model)
        stats = runners["held-out calibration"].stats(
            model, matmul_inputs(model, nodes), calibration.ranking, work, external_data=False)
        quantizer = RowQuantizer(model, stats)
        built = {name: quantizer.build(config) for name, config in VARIANTS.items()}
        built["weights only (SmoothQuant + GPTQ weights, fp32 activations)"] = weights_only(
            model, quantizer, VARIANTS["SmoothQuant + GPTQ"])

        rows = []
        for name, variant in built.items():
            path = work / "variant.onnx"
            save_model(variant, path, external_data=False)
            row: dict[str, Any] = {"model": name}
            for set_name, runner in runners.items():
                out = runner.logits(path)[subsets[set_name]]
                ref = reference[set_name][subsets[set_name]]
                row[set_name] = float((out.argmax(1) == ref.argmax(1)).mean())
                row[f"{set_name} mean |logit diff|"] = float(np.abs(out - ref).mean())
            rows.append(row)
            print(row, flush=True)
        layer_error = [{"weight": node, **quantizer.output_errors(node)} for node in nodes]

    ratio = [e["round_to_nearest"] / max(e["gptq"], 1e-30) for e in layer_error]
    lines = [
        f"int8 error sources: {args.model.name}, per-row int8 on all {len(nodes)} weight MatMuls, vs fp32.",
        "",
        "| variant | agreement, held-out calibration | agreement, SICK test | mean abs logit diff, SICK test |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['held-out calibration']:.2%} | {r['SICK test']:.2%} | "
              f"{r['SICK test mean |logit diff|']:.4f} |" for r in rows]
    lines += ["", f"GPTQ cuts each MatMul's output error on the ranking pairs by {min(ratio):.1f}x to "
                  f"{max(ratio):.0f}x (median {float(np.median(ratio)):.1f}x) over {len(ratio)} weights."]
    write_results("int8_error_sources", {"environment": environment(args.threads), "model": str(args.model),
                                         "sick_pairs": len(premises), "rows": rows, "layer_error": layer_error},
                  "\n".join(lines), args.results_dir or machine_results_dir("int8_error_sources"))


if __name__ == "__main__":
    main()
