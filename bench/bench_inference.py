"""CPU latency of one 512x512 slice: full BianqueNet and the light variant, fp32 vs bf16 autocast.

Usage: .venv/bin/python bench/bench_inference.py [--threads 2,1] [--repeats 5] [--profile] [--json out.json]
       [--compiled] [--configs bf16-head,bf16-fusion-compiled,...] [--variants bianquenet]

* Input: a synthetic lumbar phantom slice (inference.synthetic), preprocessed like a DICOM slice
  (8-bit, CLAHE, spec normalisation). Full model: random weights (the published checkpoint is not
  shipped); light model: the shipped weights when present, else random.
* Configurations are measured interleaved (fp32, bf16, fp32, bf16, ...) so that load from other
  processes on the machine affects them alike; report the medians and the bf16/fp32 and light/full ratios.
* "BN-folded": BatchNorm folded into the convolutions (inference.fuse, what the Segmenter runs).
* bf16 = torch.autocast("cpu", bfloat16) + channels_last on the whole network; bf16-head = backbone fp32,
  decoder/fusion head under bf16 autocast; bf16-fusion = bf16-head with the ASPP in fp32 (inference.precision,
  inference.split_head); only offered when the CPU has bf16 units, and only acceptable when its label maps
  agree with fp32 on >= 99.5 % of pixels.
* ``--compiled`` adds the TorchInductor-compiled modes (``bf16-head-compiled``, ``bf16-compiled``; weights
  frozen, see inference.cpu_compile); their compile time at the first call is reported as ``setup_s``
  (minutes cold for the full network on 2 loaded cores; Inductor's on-disk cache makes reruns faster).
* ``--configs`` keeps only the named configurations, by full name or precision mode ("bf16-head" keeps
  "bf16-head+CL BN-folded"); fp32 is always measured: it is the reference.
* ``--profile`` prints the top operators of one fp32 forward pass of each model first.
* ``--factored 4,2`` adds twins of each BN-folded configuration whose convolutions of upsampled maps mix
  them at their own resolution (inference.upsampled_conv): ``factored`` (x8 / x4 parts of the fusion conv)
  and ``factored2`` (x2 parts too, ``factored_min_factor`` 2).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inference.fuse import fold_batchnorm  # noqa: E402
from inference.model import build_model, factored_copy  # noqa: E402
from inference.precision import PrecisionWrapper  # noqa: E402
from inference.preprocess import normalise  # noqa: E402
from inference.weights_io import DEFAULT_WEIGHTS_PATH, load_weights  # noqa: E402

AGREEMENT_GATE = 0.995


def machine_description() -> dict[str, object]:
    model = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "bf16_units": any(f in flags for f in ("avx512_bf16", "amx_bf16")),
        "amx": "amx_bf16" in flags,
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average_start": os.getloadavg(),
    }


def phantom_input(size: int) -> np.ndarray:
    try:
        from inference.synthetic.phantom import PhantomOptions, generate_phantom

        ph = generate_phantom(seed=3, options=PhantomOptions(rows=size, cols=size))
        img = ph.image / max(float(np.percentile(ph.image, 99.5)), 1e-6) * 255.0
        img8 = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    except Exception as exc:  # noqa: BLE001 - bench still runs without the phantom generator
        print(f"(phantom generator unavailable: {exc}; using a smooth random image)")
        rng = np.random.default_rng(0)
        img8 = (rng.random((size // 16, size // 16)) * 255).astype(np.uint8).repeat(16, 0).repeat(16, 1)
    return normalise(img8)[None]


def load_models(light_weights: Path | None = None) -> dict[str, tuple[torch.nn.Module, str]]:
    torch.manual_seed(0)
    models: dict[str, tuple[torch.nn.Module, str]] = {"bianquenet": (build_model("bianquenet").eval(), "random")}
    path = light_weights or DEFAULT_WEIGHTS_PATH
    if path.is_file():
        loaded = load_weights(path)
        models["light"] = (loaded.model.eval(), f"trained {path.name}")
    else:
        models["light"] = (build_model("light").eval(), "random")
    return models


def make_runner(model: torch.nn.Module, x: torch.Tensor, mode: str):
    """Forward pass in the given precision mode (bf16 modes with channels_last)."""
    if mode == "fp32":
        return lambda: model(x)
    wrapped = PrecisionWrapper(copy.deepcopy(model).to(memory_format=torch.channels_last), mode).eval()
    xcl = x.contiguous(memory_format=torch.channels_last)
    return lambda: wrapped(xcl)


def profile(name: str, model: torch.nn.Module, x: torch.Tensor) -> list[tuple[str, float]]:
    with torch.inference_mode(), torch.profiler.profile(record_shapes=True) as prof:
        model(x)
    rows = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    top = [(f"{e.key} {e.input_shapes[:2]}", e.self_cpu_time_total / total) for e in rows[:6]]
    print(f"\nprofile {name} (fp32, share of self CPU time):")
    for k, share in top:
        print(f"  {share * 100:5.1f} %  {k}")
    return top


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="2", help="comma-separated thread counts, e.g. 2,1")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--variants", default="bianquenet,light")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--light-weights", type=Path, help="weights file for the light variant (default: shipped)")
    ap.add_argument("--compiled", action="store_true", help="also measure the torch.compile'd bf16 modes")
    ap.add_argument("--configs", help="comma-separated configuration names to keep (fp32 always runs)")
    ap.add_argument("--factored", metavar="MIN_FACTORS",
                    help="also measure each BN-folded configuration with the factored convs of upsampled maps "
                         "(inference.upsampled_conv), once per minimum factor: 4 (the default: 'factored'), "
                         "2 ('factored2'), e.g. --factored 4,2")
    args = ap.parse_args()
    info = machine_description()
    print(json.dumps(info, indent=1))
    x = torch.from_numpy(phantom_input(args.size))
    models = load_models(args.light_weights)
    results: dict[str, object] = {"machine": info, "threads": args.threads, "size": args.size, "rows": []}
    for threads, name in [(int(t), n) for t in args.threads.split(",") for n in args.variants.split(",")]:
        torch.set_num_threads(threads)
        model, weights = models[name]
        if args.profile and f"profile_{name}" not in results:
            results[f"profile_{name}"] = profile(name, model, x)
        folded = fold_batchnorm(model)
        configs = {"fp32": (model, "fp32"), "fp32 BN-folded": (folded, "fp32")}
        if info["bf16_units"]:
            configs["bf16+CL BN-folded"] = (folded, "bf16")
            configs["bf16-head+CL BN-folded"] = (folded, "bf16-head")
            configs["bf16-fusion+CL BN-folded"] = (folded, "bf16-fusion")
            if args.compiled:
                for mode in ("bf16-fusion", "bf16-head", "bf16"):
                    configs[f"{mode}-compiled+CL BN-folded"] = (folded, f"{mode}-compiled")
        if args.configs:
            keep = {c.strip() for c in args.configs.split(",")} | {"fp32"}
            configs = {c: v for c, v in configs.items() if c in keep or c.split("+")[0] in keep}
        plain_folded = [(c, mode) for c, (m, mode) in configs.items() if m is folded]
        for k in (int(v) for v in (args.factored.split(",") if args.factored else [])):
            # a twin of every BN-folded configuration with the factored convs of upsampled maps
            factored = factored_copy(folded, k)
            configs.update({f"{c} factored{'' if k == 4 else k}": (factored, mode) for c, mode in plain_folded})
        runners = {c: make_runner(m, x, bf) for c, (m, bf) in configs.items()}
        times: dict[str, list[float]] = {c: [] for c in configs}
        labels: dict[str, np.ndarray] = {}
        setup: dict[str, float] = {}
        with torch.inference_mode():
            for c, run in runners.items():  # warm-up (compiles the compiled modes), labels for the agreement check
                t0 = time.perf_counter()
                labels[c] = run().float().argmax(1).numpy()
                setup[c] = time.perf_counter() - t0
            for _ in range(args.repeats):
                for c, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    times[c].append(time.perf_counter() - t0)
        for c in configs:
            agree = float((labels[c] == labels["fp32"]).mean())
            twin = c.replace("-compiled", "")
            row = {
                "variant": name, "weights": weights, "config": c, "threads": threads,
                "median_s": statistics.median(times[c]), "min_s": min(times[c]),
                "agreement_vs_fp32": agree, "gate_passed": agree >= AGREEMENT_GATE,
                "first_call_s": setup[c], "params": sum(p.numel() for p in model.parameters()),
                "times_s": [round(t, 3) for t in times[c]],
            }
            if twin != c and twin in labels:  # compiled mode: how close to the eager mode it compiles
                row["agreement_vs_eager_twin"] = float((labels[c] == labels[twin]).mean())
            results["rows"].append(row)  # type: ignore[union-attr]
            print(json.dumps(row))
    results["load_average_end"] = os.getloadavg()
    rows = results["rows"]  # type: ignore[assignment]
    print("\n| threads | variant | weights | config | median s | min s | label agreement vs fp32 | gate | first call s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:  # type: ignore[union-attr]
        print(f"| {r['threads']} | {r['variant']} | {r['weights']} | {r['config']} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
              f"{r['agreement_vs_fp32'] * 100:.2f} % | {'pass' if r['gate_passed'] else 'FAIL'} | {r['first_call_s']:.1f} |")
    med = {(r["threads"], r["variant"], r["config"]): r["median_s"] for r in rows}  # type: ignore[union-attr]
    for (t, v, c), m in med.items():
        if c != "fp32":
            print(f"threads {t} {v}: {c} / fp32 = {m / med[(t, v, 'fp32')]:.2f}")
        elif (t, "bianquenet", "fp32") in med and v == "light":
            print(f"threads {t}: light/full (fp32) = {m / med[(t, 'bianquenet', 'fp32')]:.3f}")
    print(f"load average start {info['load_average_start']}, end {results['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
