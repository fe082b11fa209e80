"""Speed of SOFIE inside RDataFrame for a bundle, against onnxruntime, and the Gemm part
against this CPU's fp32 peak. Prints every figure and the arithmetic behind it.

Usage (from the repository root)::

    .venv/bin/python benchmarks/sofie_rdataframe.py BUNDLE [--events 2000000] [--json out.json]
    .venv/bin/python benchmarks/sofie_rdataframe.py --default-model /tmp/bench   # trains one first

What is measured (CPU time of the measuring thread or process next to wall time: on a
shared machine, CPU time is the per-core figure; say so when quoting wall times):

1. the CPU: flags, nominal clock (``/proc/cpuinfo``), FLOP per cycle (two FMA pipes x
   8 fp32 lanes x 2), and the peak measured by a register-only FMA loop (10 independent
   chains of 256-bit and 512-bit FMAs, compiled here with ``g++ -O2 -march=native``),
   which also gives the clock the core really runs at (boost);
2. the flow alone in SOFIE (``Generator::BenchmarkInference``): events/s, the Gemm calls
   alone (the model's own shapes and flags through the same BLAS) in GFLOP/s and as a
   fraction of the peak, the random draws, a whole batch (draws + flow + muons + cuts);
3. onnxruntime, one intra-op thread, on ``sampler.onnx`` (batch 1024 and 8192);
4. event loops (``dyroot.rdf.fill_templates``): one event per entry (the RDataSource)
   vs one batch per entry (RVec columns), 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_PEAK_CXX = r"""
#include <immintrin.h>
#include <cstdio>
#include <ctime>
static double cpu() { timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
#define STEP(op) a0 = op(a0, m, b); a1 = op(a1, m, b); a2 = op(a2, m, b); a3 = op(a3, m, b); a4 = op(a4, m, b); \
   a5 = op(a5, m, b); a6 = op(a6, m, b); a7 = op(a7, m, b); a8 = op(a8, m, b); a9 = op(a9, m, b);
template <class V, class F, class S> double run(F fma, S set, int lanes, long iters) {
   V m = set(0.9999999f), b = set(1e-7f);
   V a0 = set(1), a1 = set(2), a2 = set(3), a3 = set(4), a4 = set(5), a5 = set(6), a6 = set(7), a7 = set(8), a8 = set(9), a9 = set(10);
   double best = 1e300;
   for (int r = 0; r < 5; ++r) {
      double t0 = cpu();
      for (long i = 0; i < iters; ++i) { STEP(fma) }
      best = best < cpu() - t0 ? best : cpu() - t0;
   }
   volatile float sink; float o[16]; V s = a0; (void)a1;
   s = fma(s, a1, a2); s = fma(s, a3, a4); s = fma(s, a5, a6); s = fma(s, a7, a8); s = fma(s, a9, b);
   __builtin_memcpy(o, &s, sizeof(float) * (lanes < 16 ? lanes : 16)); sink = o[0]; (void)sink;
   return 10.0 * iters * lanes * 2 / best / 1e9;
}
int main() {
   double g256 = run<__m256>([](__m256 x, __m256 y, __m256 z) { return _mm256_fmadd_ps(x, y, z); },
                             [](float v) { return _mm256_set1_ps(v); }, 8, 40000000);
#ifdef __AVX512F__
   double g512 = run<__m512>([](__m512 x, __m512 y, __m512 z) { return _mm512_fmadd_ps(x, y, z); },
                             [](float v) { return _mm512_set1_ps(v); }, 16, 20000000);
#else
   double g512 = 0;
#endif
   std::printf("{\"fma256_gflops\": %.3f, \"fma512_gflops\": %.3f}\n", g256, g512);
}
"""


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_facts() -> dict:
    text = pathlib.Path("/proc/cpuinfo").read_text()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip(), v.strip())
    flags = set(fields.get("flags", "").split())
    mhz = float(fields.get("cpu MHz") or 0) or float(fields.get("bogomips", 0)) / 2
    out = {"model": fields.get("model name"), "family": fields.get("cpu family"), "model_id": fields.get("model"),
           "flags": [f for f in ("fma", "avx2", "avx512f") if f in flags], "nominal_mhz": mhz,
           "flop_per_cycle": 32 if "fma" in flags else 16}
    out["nominal_peak_gflops"] = out["flop_per_cycle"] * mhz / 1000
    with tempfile.TemporaryDirectory() as d:
        src, exe = pathlib.Path(d) / "peak.cxx", pathlib.Path(d) / "peak"
        src.write_text(_PEAK_CXX)
        subprocess.run(["g++", "-O2", "-march=native", "-std=c++17", str(src), "-o", str(exe)], check=True)
        out.update(json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout))
    out["measured_peak_gflops"] = max(out["fma256_gflops"], out["fma512_gflops"])
    out["measured_clock_ghz"] = out["measured_peak_gflops"] / out["flop_per_cycle"]
    return out


def onnxruntime_rate(bundle: pathlib.Path, batch: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    from dyroot.random import noise

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(bundle / "sampler.onnx"), so, providers=["CPUExecutionProvider"])
    cfg = json.loads((bundle / "bundle.json").read_text())
    feed = {"noise": noise(3, 0, batch).normals}
    if cfg.get("context"):
        k = len(cfg["context"]["names"])
        feed["context"] = np.eye(k, dtype=np.float32)[np.arange(batch) % k]
    sess.run(None, feed)
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(7):
        c0, w0 = cpu_seconds(), time.perf_counter()
        for _ in range(5):
            sess.run(None, feed)
        best_cpu = min(best_cpu, (cpu_seconds() - c0) / 5)
        best_wall = min(best_wall, (time.perf_counter() - w0) / 5)
    return {"batch": batch, "events_per_cpu_s": batch / best_cpu, "events_per_s": batch / best_wall}


def default_model(workdir: pathlib.Path) -> pathlib.Path:
    """The default architecture (dyroot.flows.FlowConfig()) trained 2 epochs on toy events."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from _fixtures_model import toy_dimuon_events

    from dyroot.export import export_bundle
    from dyroot.flows import FlowConfig
    from dyroot.train import TrainConfig, train_bundle

    out = workdir / "default_model"
    if not (out / "sampler_sofie.onnx").is_file():
        train_bundle(toy_dimuon_events(60_000, seed=11), out, flow=FlowConfig(),
                     train=TrainConfig(epochs=2, batch_size=4096, seed=3, threads=1), progress=False, force=True)
        export_bundle(out)
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", nargs="?", help="bundle directory")
    p.add_argument("--default-model", metavar="DIR", help="train the default architecture in DIR and use it")
    p.add_argument("--events", type=int, default=2_000_000, help="events per event loop")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if not args.bundle and not args.default_model:
        p.error("give a BUNDLE or --default-model DIR")
    bundle = pathlib.Path(args.bundle) if args.bundle else default_model(pathlib.Path(args.default_model))

    from dyroot import rdf
    from dyroot.build import build

    build(bundle)
    load = os.getloadavg()
    cpu = cpu_facts()
    print(f"CPU: {cpu['model']} (family {cpu['family']}, model {cpu['model_id']}), {' '.join(cpu['flags'])}")
    print(f"  peak per core = FMA pipes x fp32 lanes x 2 = {cpu['flop_per_cycle']} FLOP/cycle;"
          f" x nominal {cpu['nominal_mhz'] / 1000:.3f} GHz = {cpu['nominal_peak_gflops']:.1f} GFLOP/s")
    print(f"  measured FMA loop: 256-bit {cpu['fma256_gflops']:.1f}, 512-bit {cpu['fma512_gflops']:.1f} GFLOP/s"
          f" per CPU-second -> the core runs at {cpu['measured_clock_ghz']:.2f} GHz;"
          f" peak used below = {cpu['measured_peak_gflops']:.1f} GFLOP/s")
    print(f"  load average at start: {load[0]:.1f} (on {os.cpu_count()} cores)")

    r = rdf.benchmark(bundle, args.events)
    peak = cpu["measured_peak_gflops"]
    print(f"\nModel {bundle}: batch {r['batch']}, Gemm {r['gemm_flops_per_event']:,.0f} FLOP per event")
    print(f"  SOFIE flow alone:      {r['inference_events_per_cpu_s']:>12,.0f} events per CPU-second")
    g = r["gemm_gflops_per_cpu_s"]
    print(f"  its Gemm calls alone:  {g:>12.1f} GFLOP/s = {g / peak:.0%} of the measured peak"
          f" ({g / cpu['nominal_peak_gflops']:.0%} of the nominal-clock peak);"
          f" {r['gemm_fraction_of_inference']:.0%} of the flow's time")
    print(f"  random draws:          {r['noise_events_per_cpu_s']:>12,.0f} events per CPU-second")
    print(f"  whole batch:           {r['batch_events_per_cpu_s']:>12,.0f} events per CPU-second"
          " (draws + flow + muons + selection + category)")
    ort = [onnxruntime_rate(bundle, b) for b in (1024, 8192)]
    for o in ort:
        print(f"  onnxruntime 1 thread, batch {o['batch']:>5}: {o['events_per_cpu_s']:>12,.0f} events per CPU-second"
              f" (flow alone; wall {o['events_per_s']:,.0f}/s)")
    best_ort = max(o["events_per_cpu_s"] for o in ort)
    print(f"  SOFIE / onnxruntime (flow alone, per core): {r['inference_events_per_cpu_s'] / best_ort:.2f}")
    print(f"\nEvent loops, {args.events:,} events, m_mumu templates inclusive + per category:")
    one = {}
    for loop in r["loops"]:
        print(f"  {loop['method']:>8}, {loop['threads']} thread(s): {loop['events_per_cpu_s']:>10,.0f} events per"
              f" CPU-second, {loop['events_per_s']:>10,.0f} events/s wall")
        if loop["threads"] == 1:
            one[loop["method"]] = loop
    for loop in r["loops"]:
        if loop["threads"] != 1 and loop["method"] in one:
            print(f"  {loop['method']}: {loop['threads']} threads / 1 thread (wall) ="
                  f" {loop['events_per_s'] / one[loop['method']]['events_per_s']:.2f}")
    if "events" in one:
        print(f"  SOFIE in RDataFrame (events, 1 thread) / onnxruntime flow alone (per core):"
              f" {one['events']['events_per_cpu_s'] / best_ort:.2f}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"cpu": cpu, "sofie": r, "onnxruntime": ort,
                                                       "loadavg": [load, os.getloadavg()]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
