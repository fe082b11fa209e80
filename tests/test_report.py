"""Tests of dyroot.report (the generic HTML + JSON report writer) and dyroot.figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dyroot.exceptions import OutputExistsError
from dyroot.report import Report, check_output, format_value

pytest.importorskip("matplotlib")


def _report() -> Report:
    from dyroot.figures import line_figure

    rep = Report("Test <report>", subtitle="made by `pytest`", meta={"seed": 1, "x": np.array([1.0, np.inf])})
    sec = rep.section("Numbers", "Plain text with <b>tags</b> that must be escaped.")
    sec.number("G", 4.2, 0.31, key="gain")
    sec.number("N_eff", float("inf"), note="beyond the resolvable range")
    sec.number("verdict", "no memorisation seen")
    sec.table(["a", "b"], [[1, "x<y"]], "a table")
    sec.verdict(False, "one test failed")
    fig, data = line_figure([1, 2, 3], {"train": [3.0, 2.0, 1.0]}, xlabel="epoch", ylabel="loss")
    sec.figure("loss curve", fig, data, "Loss per epoch.")
    fig, data = line_figure([1, 2], {"a": [1.0, 2.0]})
    sec.figure("loss curve", fig, data)  # same name: made unique
    return rep


def test_format_value():
    assert format_value(1234.5678, 56.7) == "1235 ± 57"
    assert format_value(0.5, 0.0123) == "0.500 ± 0.012"
    assert format_value(3.0, (0.25, 0.5), "GeV") == "3.00 -0.25 +0.50 GeV"
    assert format_value(2.6e-6, 1.1e-6) == "(2.6 ± 1.1)e-6"
    assert format_value(36.1, (10.7, float("inf"))) == "36 -11 +inf"
    assert format_value(None) == "n/a" and format_value(float("nan")) == "n/a"
    assert format_value(float("inf")) == "inf"
    assert format_value(7, None, "events") == "7 events"


def test_write_layout_json_and_html(tmp_path):
    rep = _report()
    rep.attach("extra.json", {"v": np.float64(1.5), "w": float("-inf")})
    out = rep.write(tmp_path / "rep")
    assert sorted(p.name for p in out.iterdir()) == ["extra.json", "figures", "index.html", "report.json"]
    data = json.loads((out / "report.json").read_text())  # strict JSON: no NaN/Infinity tokens
    assert data["meta"]["x"] == [1.0, "inf"]
    sec = data["sections"][0]
    assert [f["name"] for f in sec["figures"]] == ["loss_curve", "loss_curve-2"]
    assert sec["numbers"][0] == {"label": "G", "key": "gain", "value": 4.2, "error": 0.31, "unit": "", "note": "",
                                 "text": "4.20 ± 0.31"}
    assert sec["verdict"] == {"ok": False, "text": "one test failed"}
    fig = json.loads((out / "figures" / "loss_curve.json").read_text())
    assert fig["data"]["curves"]["train"] == [3.0, 2.0, 1.0] and fig["section"] == "Numbers"
    assert (out / "figures" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert "&lt;b&gt;tags&lt;/b&gt;" in page and "<b>tags</b>" not in page
    assert "<code>pytest</code>" in page and "FAIL" in page and "x&lt;y" in page
    assert json.loads((out / "extra.json").read_text()) == {"v": 1.5, "w": "-inf"}


def test_atomic_and_force(tmp_path):
    rep = _report()
    out = rep.write(tmp_path / "rep")
    with pytest.raises(OutputExistsError, match="--force"):
        rep.write(out)
    with pytest.raises(OutputExistsError):
        check_output(out)
    (out / "stale.txt").write_text("old")
    rep.write(out, force=True)
    assert not (out / "stale.txt").exists()
    # A failure while writing leaves neither the folder nor a temporary one behind.
    bad = Report("bad")
    bad.attach("x.json", {"not json": object()})
    with pytest.raises(TypeError):
        bad.write(tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    with pytest.raises(ValueError, match="plain file name"):
        bad.attach("../x.json", {})


def test_add_sections_from_elsewhere(tmp_path):
    # The end-to-end report reuses sections made by other stages; figure names stay unique.
    a, b = _report(), _report()
    merged = Report("merged")
    for s in a.sections + b.sections:
        merged.add(s)
    names = [f.name for s in merged.sections for f in s.figures]
    assert len(names) == len(set(names)) == 4
    out = merged.write(tmp_path / "merged")
    assert len(list((out / "figures").glob("*.png"))) == 4


def test_figures_data_and_edge_cases():
    from dyroot.amplification import quantile_amplification, quantile_edges
    from dyroot.figures import comparison_figure, errorbar_figure, gain_figure, matrix_figure
    from dyroot.toys import ToyDimuon
    from dyroot.twosample import binned_chi2

    rng = np.random.default_rng(5)
    edges = np.linspace(0, 1, 11)
    a, b = np.histogram(rng.random(5000), edges)[0], np.histogram(rng.random(3000), edges)[0]
    _, data = comparison_figure(edges, a, b, xlabel="x", ks_p_value=0.5, logy=True)
    ref = binned_chi2(a, b)
    assert data["chi2"] == pytest.approx(ref.chi2) and data["ndf"] == 9
    np.testing.assert_allclose(data["pull"], ref.pull)
    # A quantile result with infinite n_equiv (MSE below the truth sample's noise) draws lower limits.
    toy = ToyDimuon()
    e = quantile_edges(toy.sample_mll(2_000, rng), n_quantiles=10)
    q = quantile_amplification([toy.sample_mll(50_000, rng)], e, n_train=1_000, n_truth=2_000,
                               n_gen=[100, 50_000])
    assert not np.all(np.isfinite(q.gain))
    _, gdata = gain_figure(1_000, q, None, n_gen_mark=1e5)
    assert gdata["watts_crow"] == pytest.approx(1e3**1.5)
    _, mdata = matrix_figure(np.eye(3), labels=["a", "b", "c"])
    assert mdata["labels"] == ["a", "b", "c"]
    _, edata = errorbar_figure(["c1", "c2"], {"S": ([1.0, -1.0], [0.5, 0.5])}, band=([-1, -1], [1, 1]))
    assert edata["series"]["S"]["value"] == [1.0, -1.0]
