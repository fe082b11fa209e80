"""Smoke tests of the ROOT macros in macros/ (batch mode, small N, no Python inside ROOT):
``dy_fill_templates.C`` writes the templates file of every backend, equal to the Python path."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("ROOT")
pytest.importorskip("sofie")
pytest.importorskip("scipy_openblas32")
if shutil.which("cmake") is None or shutil.which("g++") is None:
    pytest.skip("needs cmake and g++", allow_module_level=True)

pytestmark = [pytest.mark.root, pytest.mark.sofie]

REPO = pathlib.Path(__file__).resolve().parents[1]


def _root_exe() -> str:
    import importlib.util

    spec = importlib.util.find_spec("ROOT")
    candidates = [shutil.which("root")]
    if spec is not None and spec.submodule_search_locations:
        candidates.insert(0, str(pathlib.Path(list(spec.submodule_search_locations)[0]) / "bin" / "root"))
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.skip("no `root` executable")
    return ""


def _run_macro(call: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([_root_exe(), "-l", "-b", "-q", call], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def built(tiny_bundle: str) -> str:
    from dyroot.build import build

    build(tiny_bundle)
    return tiny_bundle


def test_dy_fill_templates_equals_python(built, tmp_path):
    """The macro (2 threads) and dyroot.rdf.fill_templates (1 thread): the same seed gives the same file content."""
    from dyroot import rdf
    from dyroot.templates import Templates

    out = tmp_path / "macro.root"
    proc = _run_macro(f'macros/dy_fill_templates.C("{built}", 30000, 4, "{out}", 2)')
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "wrote" in proc.stdout
    m = Templates.read(out)
    p = rdf.fill_templates(built, 30000, 4, threads=1)
    assert m.names == p.names
    for name in p.names:
        np.testing.assert_array_equal(m.counts[name], p.counts[name])  # exact
        np.testing.assert_array_equal(m.sumw2[name], p.sumw2[name])  # exact
        assert m.entries[name] == p.entries[name]
    for key in ("bundle_hash", "seed", "first_event", "n_events", "n_selected", "backend", "sigma_pb",
                "selection", "categories", "binning", "normalisation"):
        assert m.provenance[key] == p.provenance[key], key
    assert m.provenance["threads"] == 2 and m.provenance["interface"] == "macro"
    # The histograms look as the Python writer makes them (titles, axes).
    import uproot

    py = tmp_path / "python.root"
    p.write(py)
    with uproot.open(out) as a, uproot.open(py) as b:
        for name in p.names[:2]:
            for get in (lambda h: h.member("fTitle"), lambda h: h.member("fXaxis").member("fTitle"),
                        lambda h: h.member("fYaxis").member("fTitle")):
                assert get(a[name]) == get(b[name])


def test_dy_fill_templates_never_overwrites(built, tmp_path):
    out = tmp_path / "t.root"
    out.write_text("precious")
    proc = _run_macro(f'macros/dy_fill_templates.C("{built}", 1000, 1, "{out}", 1)')
    assert proc.returncode == 1
    assert "exists" in proc.stderr and out.read_text() == "precious"
    proc = _run_macro(f'macros/dy_fill_templates.C("{built}", 1000, 1, "{out}", 1, 0, true)')
    assert proc.returncode == 0, proc.stderr[-2000:]
    import uproot

    with uproot.open(out) as f:
        prov = json.loads(f["dyroot_provenance"].member("fTitle"))
    assert prov["n_events"] == 1000
    assert not list(tmp_path.glob("*.tmp*"))  # the temporary file was renamed


def test_dy_fill_templates_unbuilt_bundle(tmp_path):
    proc = _run_macro(f'macros/dy_fill_templates.C("{tmp_path}", 1000, 1, "{tmp_path / "x.root"}", 1)')
    assert proc.returncode == 1
    assert "dyroot build" in proc.stderr  # says how to fix it
    assert not (tmp_path / "x.root").exists()


def test_generated_events_from_a_users_macro(built, tmp_path):
    """dyroot::GeneratedEvents in a physicist's own C++ macro (no Python), 2 threads, equals the Python count."""
    from dyroot import rdf

    macro = tmp_path / "user.C"
    macro.write_text(f"""
#include "{REPO / 'dyroot' / 'cpp' / 'dyroot_api.hxx'}"
int user() {{
   ROOT::EnableImplicitMT(2);
   auto df = dyroot::GeneratedEvents("{built}", 50000, 3);
   auto n = df.Filter("pass_selection && mu1_pt - mu2_pt > 10").Count();
   std::cout << "selected " << *n << std::endl;
   return 0;
}}
""")
    proc = _run_macro(str(macro))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = int(proc.stdout.split("selected ")[1].split()[0])
    df = rdf.generated_events(built, 50000, 3, threads=1)
    assert got == df.Filter("pass_selection && mu1_pt - mu2_pt > 10").Count().GetValue() > 0  # exact
