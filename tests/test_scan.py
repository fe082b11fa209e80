"""Tests of dyroot.scan (and the CLI, the plots and the macro): the spurious-signal scan end to end."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("ROOT")

from dyroot.exceptions import ConfigError, OutputExistsError  # noqa: E402
from dyroot.features import DEFAULT_BINNING  # noqa: E402
from dyroot.functions import get_function  # noqa: E402
from dyroot.scan import ScanConfig, run_scan, spurious_signal, template_inputs  # noqa: E402
from dyroot.signal import SignalModel  # noqa: E402
from dyroot.templates import Templates  # noqa: E402

pytestmark = pytest.mark.root

EDGES = DEFAULT_BINNING.edges()
EPOLY3 = {"a1": -1.5, "a2": 0.2, "a3": -0.05}
MASSES = (120.0, 122.5, 125.0, 127.5, 130.0)
REPO = pathlib.Path(__file__).resolve().parents[1]


def write_templates(path: pathlib.Path, truths: dict, *, raw: float = 1e8, scale: float = 0.01,
                    rng: np.random.Generator | None = None) -> pathlib.Path:
    """A templates file whose categories follow catalogue functions: expected raw counts (Asimov),
    or Poisson counts if ``rng`` is given; the provenance scales them by ``scale`` at 139 fb^-1."""
    sigma = 1.0
    n_gen = int(round(139.0 * 1000.0 * sigma / scale))
    t = Templates.empty(categories=list(truths), provenance={"sigma_pb": sigma, "n_events": n_gen})
    for cat, (name, vals) in truths.items():
        mu = get_function(name).bin_average(EDGES, vals)
        mu *= raw / mu.sum()
        n = mu if rng is None else rng.poisson(mu).astype(np.float64)
        t.counts[f"mll_{cat}"][1:-1], t.sumw2[f"mll_{cat}"][1:-1] = n, n
    return t.write(path)


@pytest.fixture(scope="module")
def epoly3_templates(tmp_path_factory) -> pathlib.Path:
    return write_templates(tmp_path_factory.mktemp("scan") / "t.root", {"cat_a": ("Epoly3", EPOLY3)})


def test_known_answer_family_choice(epoly3_templates, tmp_path):
    """Item 7: an Asimov template of Epoly3 -> Epoly3, Epoly4, Epoly5 pass, the simpler ones fail,
    Epoly3 is chosen; then every output is written, and not overwritten without force."""
    res = spurious_signal(epoly3_templates, signal=SignalModel.default(["cat_a"]), functions="Epoly*", masses=MASSES,
                          workers=1)
    passed = {v.function: v.passed for v in res.verdicts}
    assert passed == {"Epoly1": False, "Epoly2": False, "Epoly3": True, "Epoly4": True, "Epoly5": True}
    assert res.chosen == {"cat_a": "Epoly3"}
    for v in res.verdicts:
        if v.passed:
            assert v.z_spur < 1e-3 and v.chi2_pvalue > 0.99  # exact template: no spurious signal at all
    too_simple = next(v for v in res.verdicts if v.function == "Epoly2")
    assert too_simple.z_spur > 1.0 and too_simple.chi2_pvalue < 1e-6
    c = res.inputs[0]
    assert c.scale == pytest.approx(0.01) and c.counts.sum() == pytest.approx(1e6)
    s = res.scan("cat_a", "Epoly3")
    a = s.arrays()
    np.testing.assert_allclose(a["delta_mc"], np.sqrt(0.01) * a["n_sig_error"], rtol=1e-12)
    np.testing.assert_allclose(a["n_sig_error"] / a["delta_s"], 1.0, rtol=0.02)  # the template is data-like

    out = tmp_path / "out"
    paths = res.write(out)
    for key in ("summary_json", "summary_txt", "workspace", "workspace_json", "passfail", "fits_cat_a", "spurious_cat_a"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    summary = json.loads(paths["summary_json"].read_text())
    assert summary["categories"]["cat_a"]["chosen"] == "Epoly3"
    assert len(summary["categories"]["cat_a"]["scans"][0]["points"]) == len(MASSES)
    assert "CHOSEN" in paths["summary_txt"].read_text()
    import ROOT

    f = ROOT.TFile.Open(str(paths["workspace"]))
    ws = f.Get("dyroot")
    assert ws.pdf("model_cat_a") and ws.pdf("bkg_cat_a").GetTitle() == "Epoly3" and ws.data("data_cat_a")
    f.Close()
    with pytest.raises(OutputExistsError):
        res.write(out)
    assert res.write(out, force=True, plots=False)["summary_json"].is_file()


def test_poisson_template_relaxed_criterion(tmp_path, rng):
    """A fluctuating template: the true function passes; Delta_MC (template statistics) relaxes |S|."""
    path = write_templates(tmp_path / "p.root", {"c": ("Epoly3", EPOLY3)}, raw=2e7, scale=0.05, rng=rng)
    res = spurious_signal(path, signal=SignalModel.default(["c"]), functions="Epoly3,Epoly4", masses=MASSES)
    v = {x.function: x for x in res.verdicts}
    assert v["Epoly3"].passed and res.chosen["c"] == "Epoly3"
    assert v["Epoly3"].z_relaxed <= v["Epoly3"].z_spur


def test_effective_events_inflate_the_template_errors(epoly3_templates):
    """A generated template worth N_eff events (amplification) < the N drawn: Delta_MC grows by
    sqrt(N/N_eff), the background-only chi2 shrinks by N/N_eff, the fitted yields do not move."""
    sig, kw = SignalModel.default(["cat_a"]), {"functions": "Epoly2,Epoly3", "masses": (125.0,)}
    own = spurious_signal(epoly3_templates, signal=sig, **kw)
    eff = spurious_signal(epoly3_templates, signal=sig, effective_events={"cat_a": 1e6}, **kw)
    c0, c1 = own.inputs[0], eff.inputs[0]
    assert c0.kish_events == pytest.approx(1e8) and c0.inflation == 1.0
    assert c1.kish_events == pytest.approx(1e6) and c1.inflation == pytest.approx(100.0)
    for f in ("Epoly2", "Epoly3"):
        a, b = own.scan("cat_a", f), eff.scan("cat_a", f)
        assert b.points[0].n_sig == pytest.approx(a.points[0].n_sig, rel=1e-6, abs=1e-3)
        assert b.points[0].delta_mc == pytest.approx(10.0 * a.points[0].delta_mc, rel=1e-6)
        assert b.points[0].delta_s == pytest.approx(a.points[0].delta_s, rel=1e-6)
    assert eff.scan("cat_a", "Epoly2").chi2 == pytest.approx(own.scan("cat_a", "Epoly2").chi2 / 100.0, rel=1e-6)
    assert "N_eff = 1e+06 (f = 100)" in eff.table()
    # A template already smaller than N_eff keeps its errors; unknown categories are refused.
    assert spurious_signal(epoly3_templates, signal=sig, effective_events=1e9, **kw).inputs[0].inflation == 1.0
    with pytest.raises(ConfigError, match="unknown categories"):
        spurious_signal(epoly3_templates, signal=sig, effective_events={"nope": 1e6}, **kw)


def test_template_scales(tmp_path):
    path = write_templates(tmp_path / "s.root", {"c": ("Epoly2", {"a1": -1.0, "a2": 0.1})}, raw=1e6, scale=0.02)
    assert template_inputs(path, 139.0)[0].scale == pytest.approx(0.02)
    assert template_inputs(path, 278.0)[0].scale == pytest.approx(0.04)
    assert template_inputs(path, 139.0, template_lumi_fb=13.9)[0].scale == pytest.approx(10.0)
    assert template_inputs(path, 139.0, scale=3.0)[0].sumw2.sum() == pytest.approx(9.0 * 1e6)
    t = Templates.read(path)
    xs = t.normalised("xsec", lumi_fb=10.0)
    assert template_inputs(xs, 139.0)[0].counts.sum() == pytest.approx(1e6 * 0.02)  # the same events at 139/fb
    unit = t.normalised("unit")
    assert template_inputs(unit, 139.0)[0].counts.sum() == pytest.approx(1e6 * 0.02)
    bare = Templates.empty(categories=["c"])
    bare.counts["mll_c"][1:-1] = 1.0
    with pytest.raises(ConfigError, match="sigma_pb"):
        template_inputs(bare, 139.0)
    with pytest.raises(ConfigError, match="not in the templates"):
        template_inputs(path, 139.0, categories=["nope"])


def test_python_api_with_th1_and_roodatahist():
    import ROOT

    mu = get_function("Epoly2").bin_average(EDGES, {"a1": -1.0, "a2": 0.1})
    mu *= 5e5 / mu.sum()
    h = ROOT.TH1D("h_api", "", len(EDGES) - 1, 110.0, 160.0)
    h.Sumw2()
    for i, v in enumerate(mu):
        h.SetBinContent(i + 1, v)
        h.SetBinError(i + 1, np.sqrt(v))
    sig = SignalModel.default(["mine"])
    r1 = spurious_signal(h, name="mine", signal=sig, functions="Epoly1,Epoly2", masses=(125.0,))
    assert r1.chosen == {"mine": "Epoly2"} and r1.inputs[0].counts.sum() == pytest.approx(5e5)
    x = ROOT.RooRealVar("x_api", "", 110.0, 160.0)
    dh = ROOT.RooDataHist("dh_api", "", [x], h)
    r2 = spurious_signal(dh, name="mine", signal=sig, functions="Epoly2", masses=(125.0,))
    assert r2.scans[0].points[0].n_sig == pytest.approx(r1.scan("mine", "Epoly2").points[0].n_sig, abs=1e-6)
    with pytest.warns(UserWarning, match="default DSCB"):
        spurious_signal(h, name="mine", functions="Epoly2", masses=(125.0,))


@pytest.mark.slow
def test_parallel_workers_give_the_same_numbers(epoly3_templates):
    inputs = template_inputs(epoly3_templates, 139.0)
    sig = SignalModel.default(["cat_a"])
    fns = [get_function("Epoly2"), get_function("Epoly3")]
    one = run_scan(inputs, sig, ScanConfig(masses=(121.0, 126.0), functions=fns, workers=1))
    two = run_scan(inputs, sig, ScanConfig(masses=(121.0, 126.0), functions=fns, workers=2))
    for a, b in zip(one.scans, two.scans):
        assert (a.category, a.function) == (b.category, b.function)
        np.testing.assert_allclose(a.arrays()["n_sig"], b.arrays()["n_sig"], rtol=1e-9, atol=1e-9)
    assert two.cpu_seconds > 0 and two.chosen == one.chosen


def test_cli(epoly3_templates, tmp_path, capsys):
    from dyroot.cli import main

    from dyroot.warnings import InputWarning

    out = tmp_path / "cli"
    sig = tmp_path / "signal.json"
    sig.write_text(json.dumps(SignalModel.default(["cat_a"]).to_dict()))
    args = ["spurious", str(epoly3_templates), "--functions", "Epoly2,Epoly3", "--masses", "124,126", "--output",
            str(out), "--no-plots", "-q", "-j", "1", "--signal", str(sig)]
    assert main(args) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["chosen"] == {"cat_a": "Epoly3"} and pathlib.Path(line["outputs"]["workspace"]).is_file()
    assert main(args) == 2  # outputs exist, no --force
    assert "--force" in capsys.readouterr().err
    assert main(["spurious", str(tmp_path / "missing.root"), "-q"]) == 2
    with pytest.warns(InputWarning, match="default DSCB"):
        assert main(["spurious", str(epoly3_templates), "--functions", "Epoly3", "--masses", "125", "-q", "-j", "1",
                     "--no-plots", "--no-workspace", "--output", str(tmp_path / "nosig")]) == 0
    assert main(["spurious", str(epoly3_templates), "--list-functions"]) == 0
    assert "BWZRedux" in capsys.readouterr().out
    eff = ["spurious", str(epoly3_templates), "--functions", "Epoly3", "--masses", "125", "-q", "-j", "1",
           "--no-plots", "--no-workspace", "--signal", str(sig), "--output"]
    assert main(eff + [str(tmp_path / "eff"), "--effective-events", "cat_a=1e6"]) == 0
    summary = json.loads((tmp_path / "eff" / "summary.json").read_text())
    assert summary["categories"]["cat_a"]["error_inflation"] == pytest.approx(100.0)
    capsys.readouterr()
    assert main(eff + [str(tmp_path / "eff2"), "--effective-events", "cat_a:1e6"]) == 2
    assert "CAT=N pairs" in capsys.readouterr().err


@pytest.mark.slow
def test_macro(epoly3_templates, tmp_path):
    root = shutil.which("root") or str(REPO / ".venv" / "bin" / "root")
    if not os.path.exists(root):
        pytest.skip("no root executable")
    out = tmp_path / "macro"
    call = f'{REPO}/macros/dy_spurious_signal.C("{epoly3_templates}", "", 139, "{out}", "Epoly2,Epoly3", 1, false, "124:126:2")'
    proc = subprocess.run([root, "-l", "-b", "-q", call], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cat_a -> Epoly3" in proc.stdout
    assert (out / "workspace.json").is_file()
