"""Tests of dyroot.build and ``dyroot build``: the CMake build of libdyroot for a bundle,
rebuild only on change, the BLAS isolation from torch, no fast-math leak, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ROOT")
pytest.importorskip("sofie")
pytest.importorskip("scipy_openblas32")
if shutil.which("cmake") is None or shutil.which("g++") is None:
    pytest.skip("needs cmake and g++", allow_module_level=True)

from dyroot.build import CPP_DIR, LIBRARY_NAME, build, context_edges, generate_sources, load  # noqa: E402
from dyroot.exceptions import BuildError, BundleError  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.sofie]


@pytest.fixture(scope="module")
def lib(tiny_bundle: str) -> Path:
    return build(tiny_bundle)


def _dyn_symbols(path: Path) -> list[tuple[str, str]]:
    """(section, name) of the dynamic symbols: section 'UND' for undefined."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0].rstrip(":").isdigit():
            syms.append((parts[6], parts[7].split("@")[0]))
    return syms


def test_build_layout_and_record(tiny_bundle, lib):
    assert lib == Path(tiny_bundle).resolve() / "build" / LIBRARY_NAME
    assert (lib.parent / "dyroot_model.dat").is_file()  # the weights beside the library
    record = json.loads((lib.parent / "dyroot-build.json").read_text())
    from dyroot.bundle import bundle_hash

    assert record["key"]["bundle_hash"] == bundle_hash(tiny_bundle)
    assert record["library"] == str(lib)


def test_no_rebuild_when_unchanged(tiny_bundle, lib):
    before = lib.stat().st_mtime_ns
    assert build(tiny_bundle) == lib
    assert lib.stat().st_mtime_ns == before  # nothing was recompiled or relinked


def test_rebuild_when_bundle_changes(tiny_bundle, tmp_path, monkeypatch):
    """A changed bundle.json (the cross-section) regenerates the sources and rebuilds; an
    unchanged one does not (CMake and the compiler replaced by a recorder: fast)."""
    import dyroot.build as b

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy, ignore=shutil.ignore_patterns("build"))
    calls = []

    def fake_run(cmd, log, what):
        calls.append(cmd)
        (copy / "build" / LIBRARY_NAME).touch()

    monkeypatch.setattr(b, "_run", fake_run)
    build(copy)
    assert [c[:2] for c in calls] == [["cmake", "-S"], ["cmake", "--build"]]
    build(copy)
    assert len(calls) == 2  # up to date: nothing run
    cfg = json.loads((copy / "bundle.json").read_text())
    cfg["sigma_pb"] = 123.25
    (copy / "bundle.json").write_text(json.dumps(cfg))
    build(copy)
    assert len(calls) == 4  # rebuilt
    assert "info.sigmaPb = 123.25;" in (copy / "build" / "generated" / "dyroot_bundle_config.hxx").read_text()
    build(copy, native=False)
    assert len(calls) == 6  # another option: rebuilt
    build(copy, native=False, force=True)
    assert len(calls) == 8  # forced


def test_exports_only_the_entry_point_and_no_blas(lib):
    """Hidden visibility: one exported dyroot symbol; no undefined sgemm_/sgemv_ that torch's
    MKL (libtorch_cpu exports sgemm_) could interpose."""
    syms = _dyn_symbols(lib)
    undefined = {n for s, n in syms if s == "UND"}
    defined = {n for s, n in syms if s != "UND"}
    assert "sgemm_" not in undefined and "sgemv_" not in undefined
    assert "sgemm_" not in defined and "sgemv_" not in defined  # the shim is hidden
    assert "scipy_sgemm_" in undefined  # the model calls pip scipy-openblas32 directly
    assert "dyroot_generator" in defined
    assert not [n for n in defined if "SOFIE" in n or n.startswith("_ZN6dyroot")]  # no C++ symbol of ours leaks


_SUBPROCESS = textwrap.dedent("""
    import sys, json
    import numpy as np
    if sys.argv[2] == "torch-first":
        import torch  # loads libtorch_cpu (MKL's sgemm_) before libdyroot
    from dyroot.build import load
    import ROOT
    g = load(sys.argv[1])
    n = 1000
    out = np.zeros((n, 5), np.float32)
    g.Generate(11, 0, n, ROOT.nullptr, ROOT.nullptr, ROOT.nullptr, out)
    denormal = float(np.array([1e-38], np.float32)[0] / np.float32(1000.0))
    print(json.dumps({"flow": out.tobytes().hex(), "denormal": denormal}))
""")


def test_torch_loaded_first_changes_nothing(tiny_bundle, lib):
    """The same bits with torch imported before the library; and loading the library does not
    switch the process to flush-to-zero (no crtfastmath.o from -ffast-math at link time)."""
    runs = {}
    for mode in ("plain", "torch-first"):
        proc = subprocess.run([sys.executable, "-c", _SUBPROCESS, tiny_bundle, mode], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["plain"]["flow"] == runs["torch-first"]["flow"]  # bit for bit
    for r in runs.values():
        assert r["denormal"] > 0.0  # 1e-41 survives: no flush-to-zero in the process


def test_load_returns_the_bundle_generator(tiny_bundle, lib):
    from dyroot.bundle import bundle_hash, read_config

    g = load(tiny_bundle)
    assert load(tiny_bundle) is g  # cached per process
    assert str(g.BundleHash()) == bundle_hash(tiny_bundle)
    cfg = read_config(tiny_bundle)
    assert int(g.BatchSize()) == cfg["sofie_batch"]
    assert float(g.SigmaPb()) == pytest.approx(cfg["sigma_pb"], rel=1e-15)
    assert [str(c) for c in g.CategoryNames()] == [c["name"] for c in cfg["categories"]]
    info = json.loads(str(g.Info()))
    assert "-ffast-math" in info["flags"] and "SCIPY" in info["flags"]
    assert info["gemm_flops_per_event"] > 0


def test_two_bundles_in_one_process(tiny_bundle, tiny_conditional_bundle, lib):
    """Each library reaches its own model (hidden symbols, dlsym on its own handle)."""
    from dyroot._optional import import_root

    null = import_root().nullptr
    a, b = load(tiny_bundle), load(tiny_conditional_bundle)
    assert str(a.BundleHash()) != str(b.BundleHash())
    xa, xb = np.zeros((300, 5), np.float32), np.zeros((300, 5), np.float32)
    a.Generate(3, 0, 300, null, null, null, xa)
    b.Generate(3, 0, 300, null, null, null, xb)
    assert not np.array_equal(xa, xb)
    xa2 = np.zeros((300, 5), np.float32)
    a.Generate(3, 0, 300, null, null, null, xa2)
    np.testing.assert_array_equal(xa, xa2)  # exact: deterministic


def test_sources_only(tiny_bundle, tmp_path):
    cfg = generate_sources(tiny_bundle, tmp_path / "gen")
    text = cfg.read_text()
    assert "SOFIE_dyroot_model::doInfer(s, noise, x);" in text
    assert (tmp_path / "gen" / "dyroot_model.hxx").is_file() and (tmp_path / "gen" / "dyroot_model.dat").is_file()


def test_conditional_sources_embed_the_context(tiny_conditional_bundle, tmp_path):
    from dyroot.bundle import read_config

    text = generate_sources(tiny_conditional_bundle, tmp_path / "gen").read_text()
    fractions = read_config(tiny_conditional_bundle)["context"]["fractions"]
    edges = context_edges(fractions)
    assert f"info.contextDim = {len(fractions)};" in text
    assert repr(edges[0]) in text  # the exact cumulative fraction, as dyroot.random uses it
    assert "doInfer(s, noise, context, x)" in text


def test_bundle_without_sofie_onnx(tiny_bundle, tmp_path):
    copy = tmp_path / "noonnx"
    shutil.copytree(tiny_bundle, copy, ignore=shutil.ignore_patterns("build", "sampler_sofie.onnx"))
    with pytest.raises(BundleError, match="dyroot export"):
        build(copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no model bundle|not a dyroot"):
        build(tmp_path / "missing")


def test_failed_compilation_reports_the_log(tiny_bundle, tmp_path, monkeypatch):
    copy = tmp_path / "bad"
    shutil.copytree(tiny_bundle, copy, ignore=shutil.ignore_patterns("build"))
    import dyroot.build as b

    real = b.generate_sources

    def broken(bundle, outdir):  # a generated header that does not compile
        path = real(bundle, outdir)
        path.write_text(path.read_text() + "\nthis is not C++;\n")
        return path

    monkeypatch.setattr(b, "generate_sources", broken)
    with pytest.raises(BuildError, match="compiling libdyroot failed .*build.log"):
        build(copy, jobs=1)


def test_cmake_refuses_in_source_build(tmp_path):
    src = tmp_path / "cpp"
    shutil.copytree(CPP_DIR, src)
    proc = subprocess.run(["cmake", "-S", str(src), "-B", str(src)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "do not build in the source directory" in proc.stderr.replace("\n", " ")


def test_cli_build(tiny_bundle, lib):
    proc = subprocess.run([sys.executable, "-m", "dyroot", "build", tiny_bundle], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["library"] == str(lib) and out["rebuilt"] is False


def test_cli_build_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dyroot", "build", str(tmp_path / "nothing")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("dyroot build: error:") and "no model bundle" in proc.stderr
