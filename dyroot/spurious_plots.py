"""Plots of the spurious-signal scan (matplotlib, from the numbers of a :class:`~dyroot.scan.ScanResult`).

* ``fits_<category>.png``: the template scaled to the data luminosity with the
  background-only fit of every function, and below, the pulls of the template with
  respect to the chosen function and each other function's difference to it, in units
  of the template's own statistical error;
* ``spurious_<category>.png``: the fitted signal versus :math:`m_H` for every function,
  with the band :math:`\\pm 0.2\\,\\delta S` (the ``max_z_spur`` of the criteria);
* ``passfail.png``: the table of categories x functions (pass, fail, fit failed), the
  relaxed :math:`Z_{spur}` written in each cell and the chosen function framed.

Every file is written atomically (:func:`dyroot.plots.save_png`); nothing is overwritten without ``force``.
"""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .scan import ScanResult

__all__ = ["plot_fits", "plot_spurious_vs_mass", "plot_pass_fail", "plot_all"]


def _plt() -> Any:
    from ._optional import import_optional

    mpl = import_optional("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: pathlib.Path, force: bool) -> pathlib.Path:
    from .plots import save_png

    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(fig, path, force=force, dpi=110)


def plot_fits(result: "ScanResult", category: str, path: str | os.PathLike[str], *, force: bool = False) -> pathlib.Path:
    """Template with every background-only fit, and pulls (see the module docstring)."""
    plt = _plt()
    cat = next(c for c in result.inputs if c.name == category)
    centres = 0.5 * (cat.edges[1:] + cat.edges[:-1])
    err = np.sqrt(np.maximum(cat.sumw2, 1e-300))
    chosen = result.chosen.get(category)
    scans = [s for s in result.scans if s.category == category and s.background_ok and s.prediction]
    fig, (ax, rx) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1.2]})
    ax.errorbar(centres, cat.counts, yerr=err, fmt="o", ms=1.5, lw=0.5, color="k", label="template (scaled)")
    ref = next((np.asarray(s.prediction) for s in scans if s.function == chosen), None)
    for s in scans:
        pred = np.asarray(s.prediction)
        bold = s.function == chosen
        ax.plot(centres, pred, lw=2.0 if bold else 0.7, alpha=1.0 if bold else 0.6,
                label=f"{s.function} (chosen)" if bold else s.function)
        if ref is not None and not bold:
            rx.plot(centres, (pred - ref) / err, lw=0.6, alpha=0.6)
    if ref is not None:
        rx.plot(centres, (cat.counts - ref) / err, ".", ms=2, color="k", label=f"template - {chosen}")
        rx.set_ylabel(f"(x - {chosen}) / sigma_template")
    else:
        rx.set_ylabel("no chosen function")
    ax.set_yscale("log")
    ax.set_ylabel(f"events / {cat.edges[1] - cat.edges[0]:g} GeV")
    ax.set_title(f"{category}: background-only fits ({len(scans)} functions)")
    ax.legend(fontsize=6, ncol=3)
    rx.axhline(0.0, color="grey", lw=0.5)
    rx.set_xlabel("m_mumu [GeV]")
    fig.tight_layout()
    out = _save(fig, pathlib.Path(path), force)
    plt.close(fig)
    return out


def plot_spurious_vs_mass(result: "ScanResult", category: str, path: str | os.PathLike[str], *,
                          force: bool = False) -> pathlib.Path:
    """Fitted signal versus m_H per function, with the +-max_z_spur * deltaS band."""
    plt = _plt()
    chosen = result.chosen.get(category)
    zmax = result.config.criteria.max_z_spur
    verdicts = {v.function: v for v in result.verdicts if v.category == category}
    scans = [s for s in result.scans if s.category == category and s.points]
    fig, ax = plt.subplots(figsize=(8, 5))
    band = next((s for s in scans if s.function == chosen), None) or next(
        (s for s in scans if np.any(np.isfinite(s.arrays()["delta_s"]))), None)
    if band is not None:
        a = band.arrays()
        ax.fill_between(a["mh"], -zmax * a["delta_s"], zmax * a["delta_s"], color="gold", alpha=0.4,
                        label=f"+-{zmax:g} dS ({band.function})")
    for s in scans:
        a = s.arrays()
        v = verdicts.get(s.function)
        style = "-" if v is not None and v.passed else ":"
        ax.plot(a["mh"], a["n_sig"], style, lw=2.2 if s.function == chosen else 0.9,
                label=s.function + (" (chosen)" if s.function == chosen else ""))
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("m_H [GeV]")
    ax.set_ylabel("fitted signal S (events)")
    ax.set_title(f"{category}: spurious signal (solid: passes, dotted: fails)")
    ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    out = _save(fig, pathlib.Path(path), force)
    plt.close(fig)
    return out


def plot_pass_fail(result: "ScanResult", path: str | os.PathLike[str], *, force: bool = False) -> pathlib.Path:
    """The pass/fail table as a coloured grid."""
    plt = _plt()
    cats = [c.name for c in result.inputs]
    funcs = [f.name for f in result.config.functions]
    grid = np.full((len(cats), len(funcs)), np.nan)
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(funcs)), 1.0 + 0.6 * len(cats)))
    for v in result.verdicts:
        i, j = cats.index(v.category), funcs.index(v.function)
        grid[i, j] = 2 if v.passed else (1 if v.fits_ok else 0)
        txt = f"{v.z_relaxed:.2f}" if np.isfinite(v.z_relaxed) else "-"
        ax.text(j, i, txt, ha="center", va="center", fontsize=6)
        if result.chosen.get(v.category) == v.function:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.0, ec="k"))
    from matplotlib.colors import ListedColormap

    ax.imshow(grid, cmap=ListedColormap(["#bbbbbb", "#f4a3a3", "#9fd89f"]), vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(funcs)), funcs, rotation=60, fontsize=7, ha="right")
    ax.set_yticks(range(len(cats)), cats, fontsize=8)
    ax.set_title("green: passes, red: fails, grey: fit failed; number: relaxed Z_spur; frame: chosen", fontsize=8)
    fig.tight_layout()
    out = _save(fig, pathlib.Path(path), force)
    plt.close(fig)
    return out


def plot_all(result: "ScanResult", outdir: str | os.PathLike[str], *, force: bool = False) -> dict[str, pathlib.Path]:
    """All plots of a scan into ``outdir``; returns ``{label: path}``."""
    out = pathlib.Path(outdir)
    paths = {"passfail": plot_pass_fail(result, out / "passfail.png", force=force)}
    for c in result.inputs:
        paths[f"fits_{c.name}"] = plot_fits(result, c.name, out / f"fits_{c.name}.png", force=force)
        paths[f"spurious_{c.name}"] = plot_spurious_vs_mass(result, c.name, out / f"spurious_{c.name}.png", force=force)
    return paths
