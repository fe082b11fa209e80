"""Tests of dyroot.plots (``dyroot demo`` is tested in tests/test_run.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dyroot.exceptions import ConfigError, OutputExistsError

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _events(rng, n=5000):
    return {"mll": rng.uniform(100.0, 200.0, n), "category": rng.integers(0, 6, n).astype(np.int32),
            "weight": np.full(n, 2e-3)}


def test_mll_per_category_numbers(rng, tmp_path):
    from dyroot.plots import mll_per_category_figure, plot_mll_per_category

    ev = _events(rng)
    fig, data = mll_per_category_figure(ev, mll_range=(100.0, 200.0), bin_width=2.0)
    assert len(data["edges"]) == 51 and set(data["histograms"]) == {
        "inclusive", "central_lowpt", "central_midpt", "central_highpt",
        "noncentral_lowpt", "noncentral_midpt", "noncentral_highpt"}
    # Contents are dsigma/dm in pb/GeV: the integral is the total weight (exact up to rounding).
    assert sum(data["histograms"]["inclusive"]) * 2.0 == pytest.approx(ev["weight"].sum(), rel=1e-12)
    per_cat = np.sum([data["histograms"][k] for k in data["histograms"] if k != "inclusive"], axis=0)
    np.testing.assert_allclose(per_cat, data["histograms"]["inclusive"], rtol=1e-12)
    # Uniform masses: each category puts ~1/6 x 50/100 of the weight in 110-160 (binomial, 5 sigma).
    for frac in data["window_fraction"].values():
        assert frac == pytest.approx(1 / 12, abs=5 * np.sqrt((1 / 12) * (11 / 12) / len(ev["mll"])))
    out = tmp_path / "m.png"
    plot_mll_per_category(ev, out)
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(OutputExistsError):
        plot_mll_per_category(ev, out)
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temporary left behind


def test_bad_plot_inputs(rng):
    from dyroot.plots import mll_per_category_figure

    with pytest.raises(ConfigError, match="lack"):
        mll_per_category_figure({"mll": np.ones(3)})
    with pytest.raises(ConfigError, match="range"):
        mll_per_category_figure(_events(rng), mll_range=(160.0, 110.0))
