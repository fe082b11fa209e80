r"""``dyroot bench``: generation speed per backend per core, against Pythia, in one run.

Orchestration module. Every measurement runs in its own fresh Python process
(``python -m dyroot.benchmark --worker ...``) pinned to one thread
(``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``, ``threads=1``), so
backends cannot share thread pools or interpose each other's BLAS (torch's MKL
``sgemm_`` against the SOFIE library's OpenBLAS).

What is measured, per core
    * **end to end** (``dyroot generate``'s code path: noise -> flow -> muons -> cuts
      -> categories -> histograms) for ``sofie`` (SOFIE inside RDataFrame,
      ``dyroot.rdf.fill_templates``), ``onnxruntime`` (one intra-op thread) and
      ``torch`` (CPU, one thread): generated and selected events per second, after
      a warm-up batch;
    * **the flow alone** (inference on batches of noise): events per second, the
      Gemm FLOPs per event (counted on the ONNX graph: ``2 K N`` per Gemm/MatMul
      row) and the fraction of this core's fp32 peak; for SOFIE also the Gemm calls
      alone (``Generator::BenchmarkInference`` of the C++ library);
    * **Pythia** (``dyroot.simulate`` with one job, the analysis preset): generated
      events per second and events selected in 110-160 GeV per second;
    * the **ratio per selected event in 110-160 GeV** of the fastest generator to
      Pythia (target >= 100).

    Rates are per CPU-second of the single thread (``time.process_time``): that is
    the core's time, and it hardly depends on other jobs sharing the machine; the
    wall-clock rates are in the JSON as well.

The fp32 peak of one core is ``clock x FLOP/cycle``: 32 FLOP/cycle (two 256-bit
FMA pipes: AVX2, and AMD Zen 4's AVX-512 which runs on them) or 64 (Intel cores with
two 512-bit FMA units; assumed for Intel + AVX-512), 16 without FMA. The clock is
``/proc/cpuinfo``'s (nominal, no turbo); a one-thread sgemm of numpy's BLAS is measured
too, and the larger of the two is the peak (a turbo clock makes the nominal one too
low); pass ``peak_gflops`` to override.

Example:
    >>> info = cpu_info()
    >>> info["flop_per_cycle"] in (16, 32, 64)
    True
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Mapping, Sequence

import numpy as np

from .exceptions import BuildError, DyrootError

__all__ = [
    "BENCH_BACKENDS",
    "cpu_info",
    "onnx_gemm_flops",
    "default_bundle",
    "run_benchmark",
    "format_table",
]

BENCH_BACKENDS = ("sofie", "onnxruntime", "torch")
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cpu_info() -> dict[str, Any]:
    """This machine's CPU: model, nominal clock, SIMD flags and fp32 peak per core.

    Returns:
        ``{"model", "mhz", "flags", "flop_per_cycle", "peak_gflops_per_core", "cores"}``.
    """
    text = ""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip(), v.strip())
    flags = set(fields.get("flags", "").split())
    vendor = fields.get("vendor_id", "")
    mhz = float(fields.get("cpu MHz", "0") or 0) or 2000.0
    if "fma" in flags and "avx512f" in flags and "Intel" in vendor:
        fpc = 64
    elif "fma" in flags:
        fpc = 32
    else:
        fpc = 16
    simd = [f for f in ("avx512f", "avx2", "fma", "avx", "sse4_2") if f in flags]
    return {"model": fields.get("model name", platform.processor() or "unknown"), "vendor": vendor,
            "mhz": mhz, "flags": simd, "flop_per_cycle": fpc,
            "peak_gflops_per_core": mhz * 1e-3 * fpc, "cores": os.cpu_count() or 1}


def onnx_gemm_flops(path: str | os.PathLike[str]) -> float:
    """Gemm/MatMul FLOPs per event (per batch row) of an ONNX graph: ``2 K N`` per
    product with a constant ``K x N`` weight.

    Args:
        path: the ONNX file.

    Returns:
        FLOPs per event.
    """
    from ._optional import import_optional

    onnx = import_optional("onnx")
    model = onnx.load(str(path))
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:  # Constant nodes holding matrices
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t is not None:
                    shapes[node.output[0]] = tuple(a.t.dims)
    flops = 0.0
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "MatMul") or len(node.input) < 2:
            continue
        w = shapes.get(node.input[1])
        if w is None or len(w) != 2:
            continue
        flops += 2.0 * w[0] * w[1]
    return flops


# ---------------------------------------------------------------------------------------------- workers


def _worker_generate(bundle: str, backend: str, n_events: int, seed: int) -> dict[str, Any]:
    from .generate import generate_templates, resolve_bundle

    b = resolve_bundle(bundle)
    batch = int(b.config.get("sofie_batch", 8192)) if backend == "sofie" else 8192
    generate_templates(b, 4 * batch, seed + 1, backend=backend, threads=1, progress=False)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    t = generate_templates(b, n_events, seed, backend=backend, threads=1, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"events": n_events, "seconds": wall, "cpu_seconds": cpu,
            "selected": int(t.provenance["n_selected"]["inclusive"])}


def _best_rate(fn: Any, batch: int, seconds: float = 1.5) -> float:
    """Events per CPU-second of the fastest of repeated calls (one thread: CPU time is
    the core's time, insensitive to other jobs sharing the machine)."""
    fn()
    best, start, n = float("inf"), time.perf_counter(), 0
    while time.perf_counter() - start < seconds or n < 3:
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
        n += 1
    return batch / max(best, 1e-9)


def _worker_inference(bundle: str, backend: str) -> dict[str, Any]:
    from .generate import resolve_bundle
    from .random import noise

    b = resolve_bundle(bundle)
    out: dict[str, Any] = {}
    if backend == "sofie":
        from .build import load

        gen = load(b.path if hasattr(b, "path") else bundle)
        t_infer, t_gemm, t_noise, t_batch, flops = (float(x) for x in gen.BenchmarkInference(64, 5))
        batch = int(gen.BatchSize())
        out.update(rate=batch / t_infer, gemm_flops_per_event=flops / batch, gemm_seconds_per_event=t_gemm / batch,
                   noise_rate=batch / t_noise if t_noise else None, batch_rate=batch / t_batch if t_batch else None,
                   batch=batch)
        return out
    batch = 8192
    z = noise(3, 0, batch).normals
    ctx = None
    if b.config.get("context"):
        k = len(b.config["context"]["names"])
        ctx = np.eye(k, dtype=np.float32)[np.arange(batch) % k]
    if backend == "onnxruntime":
        from .generate import _ort_session

        sess = _ort_session(b, "cpu", 1)
        feed = {"noise": z} if ctx is None else {"noise": z, "context": ctx}
        out["rate"] = _best_rate(lambda: sess.run(None, feed), batch)
    else:
        import torch

        torch.set_num_threads(1)
        zt = torch.from_numpy(z)
        ct = None if ctx is None else torch.from_numpy(ctx)
        out["rate"] = _best_rate(lambda: b.sample(zt, ct), batch)
    out["batch"] = batch
    out["gemm_flops_per_event"] = onnx_gemm_flops(b.onnx_path)
    return out


def _worker_simulate(n_events: int, seed: int, workdir: str) -> dict[str, Any]:
    from ._optional import import_optional
    from .simulate import preset_config, simulate

    path = pathlib.Path(workdir) / f"bench_sim_{os.getpid()}.root"
    r = simulate(path, n_events, preset_config("analysis"), seed=seed, jobs=1, force=True)
    uproot = import_optional("uproot")
    with uproot.open(path) as f:
        mll = f["events"]["mll"].array(library="np")
    path.unlink(missing_ok=True)
    in_window = int(np.count_nonzero((mll >= 110.0) & (mll < 160.0)))
    return {"generated": r.n_generated, "written": r.n_selected, "seconds": r.seconds,
            "cpu_seconds": r.cpu_seconds, "selected": in_window}


def _worker_sgemm(n: int = 1536, seconds: float = 1.0) -> dict[str, Any]:
    """fp32 GFLOP/s of one thread in a large square sgemm (numpy's BLAS): a measured peak.

    The nominal peak (clock x FLOP/cycle) ignores turbo clocks; a tuned BLAS on a
    large matrix reaches 85-95 % of the real peak, so the larger of the two is a
    peak that no measured fraction exceeds.
    """
    a = np.random.default_rng(1).random((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b  # warm-up
    best, t_end = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t0
        best = max(best, 2.0 * n**3 / dt * 1e-9)
        if time.perf_counter() > t_end:
            break
    return {"gflops": best, "n": n}


def _spawn(kind: str, args: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, **_ONE_THREAD}
    cmd = [sys.executable, "-m", "dyroot.benchmark", "--worker", kind, json.dumps(dict(args))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ---------------------------------------------------------------------------------------------- driver


def default_bundle(workdir: str | os.PathLike[str], *, train_events: int = 40_000, epochs: int = 3,
                   progress: bool = False) -> pathlib.Path:
    """The default model for the benchmark: the default flow architecture trained
    briefly on a small Pythia sample (cached in ``workdir/model``).

    The speed does not depend on how well the model is trained; the fraction of
    events selected in 110-160 GeV is close to the trained one's after a few epochs.

    Args:
        workdir: cache directory.
        train_events: simulated training events (training preset).
        epochs: training epochs.
        progress: show progress bars.

    Returns:
        The bundle directory.
    """
    from .export import export_bundle
    from .io import read_events
    from .simulate import preset_config, simulate
    from .train import TrainConfig, train_bundle

    work = pathlib.Path(workdir)
    model = work / "model"
    if (model / "bundle.json").is_file() and (model / "sampler.onnx").is_file():
        return model
    work.mkdir(parents=True, exist_ok=True)
    data = work / "train.root"
    if not data.is_file():
        simulate(data, train_events, preset_config("training"), seed=1, jobs=os.cpu_count() or 1, progress=progress)
    events = read_events(str(data))
    train_bundle(events, model, train=TrainConfig(epochs=epochs), force=True, progress=progress)
    export_bundle(model)
    return model


def run_benchmark(
    bundle: str | os.PathLike[str] | None = None, *, events: int = 200_000, sim_events: int = 20_000,
    backends: Sequence[str] = BENCH_BACKENDS, workdir: str | os.PathLike[str] | None = None,
    peak_gflops: float | None = None, progress: bool = True, timeout: float = 900.0,
) -> dict[str, Any]:
    """Measure every backend on one core, and Pythia, in one run.

    Args:
        bundle: the model bundle (default: :func:`default_bundle` in ``workdir``).
        events: generated events per backend (end to end).
        sim_events: events written by the Pythia run (0: no Pythia run).
        backends: backends to measure.
        workdir: scratch and cache directory (default: a temporary directory).
        peak_gflops: fp32 peak of one core in GFLOP/s (default: :func:`cpu_info`).
        progress: report each step on stderr.
        timeout: seconds allowed per measurement.

    Returns:
        The figures (JSON-able): ``cpu``, ``model``, ``backends`` (per backend),
        ``simulate``, ``ratio_selected``.
    """
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="dyroot-bench-")
        workdir = tmp.name
    say = (lambda m: print(f"dyroot bench: {m}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    try:
        if bundle is None:
            say(f"training the default model in {workdir} (cached)")
            bundle = default_bundle(workdir)
        bundle = str(bundle)
        cpu = cpu_info()
        if peak_gflops:
            peak, peak_basis = float(peak_gflops), "given"
        else:
            say("one-thread sgemm (a measured fp32 peak)")
            sg = _spawn("sgemm", {}, timeout)
            cpu["sgemm_gflops"] = sg.get("gflops")
            peak, peak_basis = float(cpu["peak_gflops_per_core"]), "nominal clock x FLOP/cycle"
            if isinstance(sg.get("gflops"), float) and sg["gflops"] > peak:
                peak, peak_basis = sg["gflops"], "one-thread sgemm (above the nominal: turbo clock)"
        out: dict[str, Any] = {"cpu": cpu, "peak_gflops_per_core": peak, "peak_basis": peak_basis,
                               "bundle": bundle, "events": events,
                               "threads": 1, "load_average": _loadavg(), "backends": {}}
        out["model"] = _model_summary(bundle)
        for be in backends:
            say(f"{be}: end to end, {events:,} events on one core")
            gen = _spawn("generate", {"bundle": bundle, "backend": be, "n_events": events, "seed": 1}, timeout)
            say(f"{be}: the flow alone")
            inf = _spawn("inference", {"bundle": bundle, "backend": be}, timeout)
            out["backends"][be] = _backend_figures(gen, inf, peak)
        if sim_events > 0:
            say(f"simulate (Pythia, one job): {sim_events:,} events")
            sim = _spawn("simulate", {"n_events": sim_events, "seed": 1, "workdir": str(workdir)}, timeout)
        else:
            sim = {"error": "not run (sim_events = 0)"}
        if "error" not in sim:
            sim["events_per_s"] = sim["generated"] / sim["seconds"]
            sim["selected_per_s"] = sim["selected"] / sim["seconds"]
            sim["events_per_cpu_s"] = sim["generated"] / sim["cpu_seconds"]
            sim["selected_per_cpu_s"] = sim["selected"] / sim["cpu_seconds"]
        out["simulate"] = sim
        # The ratio on CPU time: one thread each, so CPU-seconds are core-seconds, and the
        # figure does not depend on how busy the machine was; the wall-clock ratio is kept too.
        rates = {k: v["selected_per_cpu_s"] for k, v in out["backends"].items() if v.get("selected_per_cpu_s")}
        walls = {k: v["selected_per_s"] for k, v in out["backends"].items() if v.get("selected_per_s")}
        if rates and sim.get("selected_per_cpu_s"):
            best = max(rates, key=rates.__getitem__)
            out["ratio_selected"] = {
                "backend": best, "ratio": rates[best] / sim["selected_per_cpu_s"], "target": 100.0, "basis": "cpu time",
                "per_backend": {k: r / sim["selected_per_cpu_s"] for k, r in rates.items()},
                "per_backend_wall": {k: r / sim["selected_per_s"] for k, r in walls.items()}}
        out["load_average_after"] = _loadavg()
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _model_summary(bundle: str) -> dict[str, Any]:
    try:
        cfg = json.loads((pathlib.Path(bundle) / "bundle.json").read_text())
    except (OSError, ValueError):
        return {}
    f = cfg.get("flow", {})
    return {k: f.get(k) for k in ("architecture", "layers", "hidden", "depth", "bins", "context")} | {
        "sofie_batch": cfg.get("sofie_batch")}


def _backend_figures(gen: Mapping[str, Any], inf: Mapping[str, Any], peak: float) -> dict[str, Any]:
    fig: dict[str, Any] = {}
    if "error" in gen:
        fig["error"] = gen["error"]
    else:
        fig.update(events_per_s=gen["events"] / gen["seconds"], selected_per_s=gen["selected"] / gen["seconds"],
                   selected_fraction=gen["selected"] / gen["events"], seconds=gen["seconds"])
        if gen.get("cpu_seconds"):
            fig.update(events_per_cpu_s=gen["events"] / gen["cpu_seconds"],
                       selected_per_cpu_s=gen["selected"] / gen["cpu_seconds"], cpu_seconds=gen["cpu_seconds"])
    if "error" in inf:
        fig["inference_error"] = inf["error"]
    else:
        flops = inf.get("gemm_flops_per_event") or 0.0
        fig.update(flow_events_per_s=inf["rate"], gemm_flops_per_event=flops,
                   flow_gflops=flops * inf["rate"] * 1e-9, flow_fraction_of_peak=flops * inf["rate"] * 1e-9 / peak)
        if inf.get("gemm_seconds_per_event"):
            g = flops / inf["gemm_seconds_per_event"] * 1e-9
            fig.update(gemm_gflops=g, gemm_fraction_of_peak=g / peak)
        for k in ("noise_rate", "batch_rate", "batch"):
            if inf.get(k) is not None:
                fig[k] = inf[k]
    return fig


def _fmt(x: Any, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def format_table(result: Mapping[str, Any]) -> str:
    """The benchmark as a plain-text table."""
    cpu = result["cpu"]
    lines = [
        f"dyroot bench: {cpu['model']} at {cpu['mhz']:.0f} MHz, one thread per measurement, fp32 peak "
        f"{result['peak_gflops_per_core']:.1f} GFLOP/s per core ({result.get('peak_basis', 'nominal')}; nominal "
        f"{cpu['peak_gflops_per_core']:.1f} = {cpu['flop_per_cycle']} FLOP/cycle, one-thread sgemm "
        f"{_fmt(cpu.get('sgemm_gflops'), '.1f')}); "
        f"load average {result.get('load_average')} -> {result.get('load_average_after')}",
        f"model: {result.get('model')}  ({result['events']:,} events per backend)",
        "",
        "rates per CPU-second of one thread (= per core; wall-clock rates in the JSON); flow ev/s: the flow alone",
        f"{'backend':<13}{'events/s':>12}{'selected/s':>12}{'sel. frac':>10}{'flow ev/s':>12}"
        f"{'GEMM FLOP/ev':>13}{'flow % peak':>12}{'GEMM % peak':>12}{'x Pythia':>10}",
    ]
    ratios = (result.get("ratio_selected") or {}).get("per_backend", {})
    for name, f in result["backends"].items():
        if "error" in f and "flow_events_per_s" not in f:
            lines.append(f"{name:<13}  unavailable: {f['error']}")
            continue
        lines.append(
            f"{name:<13}{_fmt(f.get('events_per_cpu_s', f.get('events_per_s'))):>12}"
            f"{_fmt(f.get('selected_per_cpu_s', f.get('selected_per_s'))):>12}"
            f"{_fmt(f.get('selected_fraction'), '.3f'):>10}{_fmt(f.get('flow_events_per_s')):>12}"
            f"{_fmt(f.get('gemm_flops_per_event')):>13}{_fmt(_pct(f.get('flow_fraction_of_peak')), '.1f'):>12}"
            f"{_fmt(_pct(f.get('gemm_fraction_of_peak')), '.1f'):>12}{_fmt(ratios.get(name), '.0f'):>10}")
        if "error" in f:
            lines.append(f"{'':<13}  end to end unavailable: {f['error']}")
    sim = result.get("simulate", {})
    if "error" in sim:
        lines.append(f"{'simulate':<13}  unavailable: {sim['error']}")
    else:
        lines.append(f"{'simulate':<13}{_fmt(sim.get('events_per_cpu_s', sim.get('events_per_s'))):>12}"
                     f"{_fmt(sim.get('selected_per_cpu_s', sim.get('selected_per_s'))):>12}"
                     f"{_fmt(sim['selected'] / sim['generated'], '.3f'):>10}   (Pythia 8, one job; selected = "
                     "analysis cuts and 110-160 GeV)")
    r = result.get("ratio_selected")
    if r:
        verdict = "meets" if r["ratio"] >= r["target"] else "MISSES"
        wall = (r.get("per_backend_wall") or {}).get(r["backend"])
        lines.append(f"\nper selected event in 110-160 GeV: {r['backend']} is {r['ratio']:,.0f}x Pythia per core "
                     f"({verdict} the >= {r['target']:.0f}x target; wall clock: {_fmt(wall, ',.0f')}x)")
    return "\n".join(lines)


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 3 or argv[0] != "--worker":
        print("usage: python -m dyroot.benchmark --worker KIND JSON (internal; use `dyroot bench`)", file=sys.stderr)
        return 2
    kind, args = argv[1], json.loads(argv[2])
    fn = {"generate": _worker_generate, "inference": _worker_inference, "simulate": _worker_simulate,
          "sgemm": _worker_sgemm}[kind]
    try:
        result = fn(**args)
    except (DyrootError, BuildError, ModuleNotFoundError) as err:
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 0
    print(json.dumps(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
