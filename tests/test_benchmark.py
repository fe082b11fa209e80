"""Tests of dyroot.benchmark (the machinery of ``dyroot bench``; the figures are a benchmark's)."""

from __future__ import annotations

import json

import pytest

from dyroot.benchmark import _backend_figures, _worker_sgemm, cpu_info, format_table, onnx_gemm_flops, run_benchmark


def test_cpu_info():
    info = cpu_info()
    assert info["flop_per_cycle"] in (16, 32, 64)
    assert info["peak_gflops_per_core"] == pytest.approx(info["mhz"] * 1e-3 * info["flop_per_cycle"])
    assert info["cores"] >= 1


def test_measured_sgemm_peak():
    # a real measurement: positive, and far below anything a CPU core could do (1 TFLOP/s)
    r = _worker_sgemm(n=256, seconds=0.05)
    assert r["n"] == 256 and 0.1 < r["gflops"] < 1000.0


def test_gemm_flops_known_answer(standin_bundle):
    # the stand-in sampler has one Linear(5, 5): 2 * 5 * 5 FLOPs per event
    assert onnx_gemm_flops(standin_bundle.onnx_path) == 50.0


def test_figures_and_table():
    gen = {"events": 1000, "seconds": 0.5, "cpu_seconds": 0.25, "selected": 400}
    inf = {"rate": 10_000.0, "gemm_flops_per_event": 1e5, "gemm_seconds_per_event": 2e-6, "batch": 256}
    f = _backend_figures(gen, inf, peak=100.0)
    assert f["events_per_s"] == 2000.0 and f["selected_per_s"] == 800.0 and f["selected_fraction"] == 0.4
    assert f["events_per_cpu_s"] == 4000.0 and f["selected_per_cpu_s"] == 1600.0  # per CPU-second
    assert f["flow_fraction_of_peak"] == pytest.approx(1e5 * 1e4 * 1e-9 / 100.0)  # FLOP/ev x ev/s / peak
    assert f["gemm_fraction_of_peak"] == pytest.approx(1e5 / 2e-6 * 1e-9 / 100.0)
    result = {"cpu": cpu_info(), "peak_gflops_per_core": 100.0, "events": 1000, "backends": {"sofie": f,
              "torch": {"error": "no torch"}}, "simulate": {"generated": 100, "seconds": 1.0, "selected": 8,
              "events_per_s": 100.0, "selected_per_s": 8.0},
              "ratio_selected": {"backend": "sofie", "ratio": 100.0, "target": 100.0, "per_backend": {"sofie": 100.0}}}
    text = format_table(result)
    assert "4,000" in text  # the table shows the per-CPU-second rate
    assert "sofie" in text and "unavailable: no torch" in text and "100x Pythia" in text and "meets" in text


@pytest.mark.slow
def test_run_benchmark_small(templates_bundle, tmp_path):
    if not hasattr(templates_bundle, "path") or not (templates_bundle.path / "bundle.json").is_file() \
            or type(templates_bundle).__module__ != "dyroot.bundle":
        pytest.skip("needs a real bundle directory (the model stage's tiny_bundle)")
    r = run_benchmark(templates_bundle.path, events=20_000, sim_events=0, backends=("onnxruntime",),
                      workdir=tmp_path, progress=False, timeout=300)
    f = r["backends"]["onnxruntime"]
    assert "error" not in f, f
    assert f["events_per_s"] > 0 and 0 < f["selected_fraction"] < 1 and f["gemm_flops_per_event"] > 0
    json.dumps(r)  # JSON-able
