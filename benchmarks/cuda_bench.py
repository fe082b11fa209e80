"""Benchmark of the fused CUDA path of ``dyroot generate --backend torch --device cuda``.

Run on a GPU machine (``benchmarks/cuda_check.sh`` calls it). Prints a table and
writes the figures as JSON:

* the device, its measured fp32 matmul ceiling (TF32 off; torch.mm 8192^3) and
  copy bandwidth;
* per configuration (batch size, eager or ``torch.compile``, FP32 or TF32):
  events/min end to end WITH cuts, categories and histograms (float64 on the
  device), the flow alone, the noise alone; the Gemm FLOPs per event and the
  fraction of the fp32 roofline they reach (target on an H200: >= 5e9 events/min,
  >= 40 % of the fp32 roofline).

The model is ``--bundle`` or, by default, the default architecture
(:class:`dyroot.flows.FlowConfig()`) trained for one epoch on toy events on the
GPU (speed does not depend on the training).

Usage:
    python3 benchmarks/cuda_bench.py [--bundle DIR] [--seconds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from typing import Any

ROOT_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT_DIR), str(ROOT_DIR / "tests")]


DEVICE = "cuda"


def _cuda_time(fn: Any, repeat: int = 5) -> float:
    import torch

    if DEVICE == "cpu":  # dry run of this script on a machine without GPU
        fn()
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        best = min(best, a.elapsed_time(b) * 1e-3)
    return best


def device_ceilings() -> dict[str, Any]:
    """Name, SMs, measured fp32 (no TF32) matmul rate and device copy bandwidth."""
    import torch

    if DEVICE == "cpu":
        n, size, name, sms, mem = 1024, 1 << 26, "cpu (dry run)", 0, 0.0
    else:
        p = torch.cuda.get_device_properties(0)
        n, size, name, sms, mem = 8192, 1 << 30, p.name, p.multi_processor_count, p.total_memory / 1e9
        torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=DEVICE)
    b = torch.randn(n, n, device=DEVICE)
    t = _cuda_time(lambda: torch.mm(a, b))
    x = torch.empty(size, dtype=torch.uint8, device=DEVICE)
    y = torch.empty_like(x)
    tc = _cuda_time(lambda: y.copy_(x))
    del a, b, x, y
    return {"name": name, "sms": sms, "memory_gb": mem,
            "fp32_matmul_tflops": 2 * n**3 / t * 1e-12, "copy_tb_s": 2 * size / tc * 1e-12,
            "torch": torch.__version__, "cuda": torch.version.cuda}


def default_bundle(workdir: pathlib.Path) -> pathlib.Path:
    """The default architecture trained one epoch on toy events (on the GPU), exported."""
    from _fixtures_model import toy_dimuon_events

    from dyroot.train import TrainConfig, train_bundle

    out = workdir / "model"
    train_bundle(toy_dimuon_events(60_000, seed=3), out, train=TrainConfig(epochs=1, device=DEVICE), progress=False,
                 force=True)
    try:
        from dyroot.export import export_bundle

        export_bundle(out)
    except Exception as err:  # ONNX is only used to count FLOPs here
        print(f"export failed ({err}); FLOPs counted from the torch module", file=sys.stderr)
    return out


def gemm_flops(bundle: Any) -> float:
    """Gemm FLOPs per event: from the ONNX graph, else from the module's Linear layers."""
    try:
        from dyroot.benchmark import onnx_gemm_flops

        return onnx_gemm_flops(bundle.onnx_path)
    except Exception:
        import torch

        return float(sum(2 * m.in_features * m.out_features for m in bundle.flow.modules()
                         if isinstance(m, torch.nn.Linear)))


def measure(bundle: Any, batch: int, compile: bool, tf32: bool, seconds: float) -> dict[str, Any]:
    """Events/s end to end, flow alone and noise alone for one configuration."""
    import torch

    from dyroot.generate import generate_templates
    from dyroot.random import noise_at

    kw = dict(backend="torch", device=DEVICE, batch_size=batch, progress=False, compile=compile, tf32=tf32)
    t0 = time.perf_counter()
    warm = generate_templates(bundle, 3 * batch, 99, **kw)  # includes compilation
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    generate_templates(bundle, 4 * batch, 98, **kw)
    est = 4 * batch / (time.perf_counter() - t0)
    n = int(max(8, min(2048, est * seconds / batch))) * batch
    t0 = time.perf_counter()
    t = generate_templates(bundle, n, 1, **kw)
    wall = time.perf_counter() - t0
    idx = torch.arange(batch, device=DEVICE, dtype=torch.int64)
    z = noise_at(1, idx).normals
    torch.backends.cuda.matmul.allow_tf32 = tf32
    with torch.inference_mode():
        t_flow = _cuda_time(lambda: bundle.sample(z))
        t_noise = _cuda_time(lambda: noise_at(1, idx))
    torch.backends.cuda.matmul.allow_tf32 = False
    del warm
    return {"batch": batch, "compile": compile, "tf32": tf32, "events": n, "seconds": wall,
            "events_per_s": n / wall, "events_per_min": 60 * n / wall,
            "selected_fraction": t.provenance["n_selected"]["inclusive"] / n,
            "flow_events_per_s": batch / t_flow, "noise_events_per_s": batch / t_noise,
            "first_call_s": warm_s,
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if DEVICE == "cuda" else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=None, help="model bundle (default: the default architecture, toy-trained)")
    parser.add_argument("--seconds", type=float, default=15.0, help="target seconds per timed run")
    parser.add_argument("--configs", default="1048576:eager:fp32,4194304:eager:fp32,4194304:compile:fp32,"
                        "4194304:compile:tf32", help="BATCH:eager|compile:fp32|tf32, comma-separated")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to dry-run this script")
    args = parser.parse_args()
    import torch

    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    from dyroot.bundle import load_bundle

    dev = device_ceilings()
    print(json.dumps(dev), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(args.bundle) if args.bundle else default_bundle(pathlib.Path(tmp))
        bundle = load_bundle(path).to(DEVICE)
        flops = gemm_flops(bundle)
        result: dict[str, Any] = {"device": dev, "model": bundle.config.get("flow"), "gemm_flops_per_event": flops,
                                  "datasheet_fp32_tflops": 67.0, "runs": []}
        print(f"{'batch':>9} {'mode':>8} {'prec':>5} {'events/min':>12} {'flow ev/s':>12} {'noise ev/s':>12} "
              f"{'% fp32 (meas.)':>15} {'first call s':>13} {'mem GB':>7}", flush=True)
        for cfg in args.configs.split(","):
            b, mode, prec = cfg.split(":")
            if DEVICE == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                r = measure(bundle, int(b), mode == "compile", prec == "tf32", args.seconds)
            except Exception as err:  # report and go on with the next configuration
                print(f"{cfg}: failed: {type(err).__name__}: {err}", flush=True)
                result["runs"].append({"config": cfg, "error": f"{type(err).__name__}: {err}"})
                continue
            r["fraction_fp32_measured"] = flops * r["events_per_s"] / (dev["fp32_matmul_tflops"] * 1e12)
            r["fraction_fp32_datasheet"] = flops * r["events_per_s"] / 67e12
            result["runs"].append(r)
            print(f"{b:>9} {mode:>8} {prec:>5} {r['events_per_min']:>12.3e} {r['flow_events_per_s']:>12.3e} "
                  f"{r['noise_events_per_s']:>12.3e} {100 * r['fraction_fp32_measured']:>14.1f}% "
                  f"{r['first_call_s']:>13.1f} {r['peak_memory_gb']:>7.1f}", flush=True)
        best = max((r for r in result["runs"] if "events_per_min" in r), key=lambda r: r["events_per_min"],
                   default=None)
        if best:
            result["best"] = best
            print(f"best: {best['events_per_min']:.3e} events/min with cuts and histograms "
                  f"(target 5e9), {100 * best['fraction_fp32_measured']:.1f} % of the measured fp32 matmul rate "
                  f"at {flops:,.0f} Gemm FLOP/event", flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
