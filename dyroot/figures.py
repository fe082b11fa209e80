r"""Figures in the style physicists publish, each returned with the numbers behind it.

Boundary module (matplotlib and mplhep, imported lazily; never ROOT). Every function
returns ``(figure, data)``: a ``matplotlib.figure.Figure`` drawn in the ATLAS-like
style of mplhep (ROOT-like axes, inward ticks, Helvetica-like fonts; a plain
matplotlib style when mplhep is absent), with a ``dyroot Simulation`` label, and a
JSON-ready ``dict`` of everything plotted, for :meth:`dyroot.report.Section.figure`.

* :func:`comparison_figure`: two normalised histograms with ratio and pull panels.
* :func:`gain_figure`: the amplification :math:`G` against :math:`N_\mathrm{gen}`.
* :func:`variance_figure`: the ensemble variance and its fit :math:`a/N + c`.
* :func:`distance_figure`: nearest-training-event distances, generated vs held-out.
* :func:`matrix_figure`: a correlation matrix.
* :func:`roc_figure`: a classifier's ROC curve.
* :func:`errorbar_figure`: values per category with error bars (e.g. the spurious signal).
* :func:`line_figure`: curves against a common x (e.g. loss curves).

Example:
    >>> import numpy as np
    >>> e = np.linspace(110, 160, 11)
    >>> fig, data = comparison_figure(e, np.full(10, 100.0), np.full(10, 50.0), xlabel="m [GeV]")
    >>> round(data["chi2"], 6), data["ndf"]
    (0.0, 9)
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

__all__ = [
    "style",
    "label",
    "comparison_figure",
    "gain_figure",
    "variance_figure",
    "distance_figure",
    "matrix_figure",
    "roc_figure",
    "errorbar_figure",
    "line_figure",
    "VARIABLE_LABELS",
]

#: Axis labels of the event variables (matplotlib mathtext), units in GeV.
VARIABLE_LABELS = {
    "mll": r"$m_{\mu\mu}$ [GeV]", "ptll": r"$p_{T}^{\mu\mu}$ [GeV]", "yll": r"$y_{\mu\mu}$",
    "costheta": r"$\cos\theta^{*}_{CS}$", "phi_cs": r"$\phi^{*}_{CS}$", "phill": r"$\phi_{\mu\mu}$",
    "mu1_pt": r"$p_{T}^{\mu 1}$ [GeV]", "mu2_pt": r"$p_{T}^{\mu 2}$ [GeV]",
    "mu1_eta": r"$\eta^{\mu 1}$", "mu2_eta": r"$\eta^{\mu 2}$",
}

GEN_COLOR, REF_COLOR, ALT_COLOR = "#d62728", "black", "#1f77b4"


@contextlib.contextmanager
def style() -> Iterator[Any]:
    """A context with the ATLAS-like mplhep style (plain if mplhep is missing).

    Figures are built from ``matplotlib.figure.Figure`` directly, without pyplot, so
    no GUI backend is touched and nothing stays registered in a global figure manager.

    Yields:
        ``matplotlib.figure.Figure`` (the class).
    """
    from ._optional import import_optional

    matplotlib = import_optional("matplotlib")
    from matplotlib.figure import Figure

    try:
        import mplhep

        rc = dict(mplhep.style.ATLAS)
    except ModuleNotFoundError:
        rc = {"xtick.direction": "in", "ytick.direction": "in", "xtick.top": True, "ytick.right": True}
    # Sized for report pages (figures of ~6 inches): smaller labels than a full-page plot,
    # and no "x10^-2" offset text colliding with the label.
    rc.update({"font.size": 13, "axes.labelsize": "large", "xtick.labelsize": "medium", "ytick.labelsize": "medium",
               "axes.formatter.limits": (-4, 5), "legend.fontsize": "small", "legend.title_fontsize": "small",
               "axes.formatter.use_mathtext": False})  # plain tick labels: 3x faster, same look
    with matplotlib.rc_context(rc):
        yield Figure


def label(ax: Any, text: str = "Simulation", *, extra: str = "") -> None:
    """Write the ``dyroot Simulation`` label (bold + italic, as experiments do) in the top-left.

    Args:
        ax: the axes.
        text: the italic part.
        extra: a second line (e.g. the category, the sample sizes).
    """
    try:
        import mplhep

        mplhep.label.exp_text("dyroot", text, ax=ax, loc=1)
    except (ModuleNotFoundError, AttributeError, TypeError):
        ax.text(0.04, 0.95, f"dyroot {text}", transform=ax.transAxes, va="top", fontweight="bold")
    if extra:
        ax.text(0.04, 0.87, extra, transform=ax.transAxes, va="top", fontsize="small")


def _stairs_band(ax: Any, edges: np.ndarray, y: np.ndarray, err: np.ndarray, color: str, lbl: str) -> None:
    ax.stairs(y, edges, color=color, linewidth=1.6, label=lbl)
    ax.stairs(y + err, edges, baseline=y - err, fill=True, color=color, alpha=0.25, linewidth=0)


def comparison_figure(
    edges: np.ndarray,
    counts_gen: np.ndarray,
    counts_ref: np.ndarray,
    sumw2_gen: np.ndarray | None = None,
    sumw2_ref: np.ndarray | None = None,
    *,
    xlabel: str = "",
    gen_label: str = "Generated (flow)",
    ref_label: str = "Reference (held-out)",
    extra: str = "",
    logy: bool = False,
    ks_p_value: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    r"""Two normalised histograms (fraction per bin), their ratio and the pulls per bin.

    The statistics are those of :func:`dyroot.twosample.binned_chi2` (pooled-expected
    errors); the legend quotes :math:`\chi^2/\mathrm{ndf}` and its p-value (and the KS
    p-value when given).

    Args:
        edges: the bin edges.
        counts_gen, counts_ref: sums of weights per bin.
        sumw2_gen, sumw2_ref: sums of squared weights (default: the counts).
        xlabel: the x-axis label (with its unit).
        gen_label, ref_label: legend entries.
        extra: a line under the label (category, sizes).
        logy: logarithmic y axis.
        ks_p_value: the KS p-value to quote.

    Returns:
        ``(figure, data)``.
    """
    from .twosample import binned_chi2

    res = binned_chi2(counts_gen, counts_ref, sumw2_gen, sumw2_ref)
    edges = np.asarray(edges, dtype=np.float64)
    with style() as Figure:
        fig = Figure(figsize=(6.4, 6.8))
        gs = fig.add_gridspec(3, 1, height_ratios=(3.2, 1.0, 1.0), hspace=0.06)
        ax, rx, px = fig.add_subplot(gs[0]), fig.add_subplot(gs[1]), fig.add_subplot(gs[2])
        rx.sharex(ax)
        px.sharex(ax)
        centres = 0.5 * (edges[1:] + edges[:-1])
        _stairs_band(ax, edges, res.f1, res.err1, GEN_COLOR, gen_label)
        ax.errorbar(centres, res.f2, yerr=res.err2, fmt="o", color=REF_COLOR, markersize=3.5, label=ref_label)
        ax.set_ylabel("Fraction of events / bin")
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.45 * max(float(np.nanmax(res.f1 + res.err1)), float(np.nanmax(res.f2 + res.err2))))
        stat = rf"$\chi^2$/ndf = {res.chi2:.1f}/{res.ndf}, p = {res.p_value:.2g}"
        if ks_p_value is not None:
            stat += f"\nKS p = {ks_p_value:.2g}"
        ax.legend(loc="upper right", title=stat, fontsize="small", title_fontsize="small", frameon=False)
        label(ax, extra=extra)
        ok = np.isfinite(res.ratio)
        rx.axhline(1.0, color="grey", linewidth=0.8)
        rx.errorbar(centres[ok], res.ratio[ok], yerr=res.ratio_err[ok], fmt="o", color=GEN_COLOR, markersize=2.5)
        spread = float(np.nanpercentile(np.abs(res.ratio[ok] - 1.0), 95)) if ok.any() else 0.1
        lim = min(max(0.05, 1.3 * spread), 1.0)
        rx.set_ylim(1 - lim, 1 + lim)
        rx.set_ylabel("Gen./Ref.", fontsize="small")
        px.bar(centres, res.pull, width=np.diff(edges), color=GEN_COLOR, alpha=0.7)
        for level in (-2, 2):
            px.axhline(level, color="grey", linestyle=":", linewidth=0.8)
        px.set_ylim(-4.5, 4.5)
        px.set_ylabel("Pull", fontsize="small")
        px.set_xlabel(xlabel)
        for a in (ax, rx):
            a.tick_params(labelbottom=False)
            a.set_xlabel("")
        ax.set_xlim(edges[0], edges[-1])
        fig.subplots_adjust(left=0.15, right=0.96, top=0.97, bottom=0.09)
    data = {"edges": edges, "generated": {"fraction": res.f1, "error": res.err1},
            "reference": {"fraction": res.f2, "error": res.err2}, "ratio": res.ratio, "ratio_error": res.ratio_err,
            "pull": res.pull, "chi2": res.chi2, "ndf": res.ndf, "p_value": res.p_value, "ks_p_value": ks_p_value,
            "xlabel": xlabel}
    return fig, data


def gain_figure(
    n_train: float,
    quantile: Any = None,
    ensemble: Any = None,
    *,
    extra: str = "",
    n_gen_mark: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    r""":math:`G = n_\mathrm{equiv}/N_\mathrm{train}` against :math:`N_\mathrm{gen}`.

    Draws the quantile-MSE points (:class:`~dyroot.amplification.QuantileAmplification`)
    with their intervals and asymptote, the ensemble curve
    :math:`G(N) = A/(A/N + c)/N_\mathrm{train}` (:class:`~dyroot.amplification.EnsembleAmplification`)
    with its band, the line of perfect i.i.d. events :math:`G = N_\mathrm{gen}/N_\mathrm{train}`,
    :math:`G = 1` (worth the training set, no more), and the Watts-Crow size
    :math:`N_\mathrm{train}^{3/2}`.

    Args:
        n_train: training events (in the same category and window).
        quantile: a quantile-MSE result, or ``None``.
        ensemble: an ensemble result, or ``None``.
        extra: a line under the label.
        n_gen_mark: mark this generated size (e.g. the template's) with a vertical line.

    Returns:
        ``(figure, data)``.
    """
    from .amplification import watts_crow_bound

    data: dict[str, Any] = {"n_train": n_train, "watts_crow": watts_crow_bound(n_train)}
    xs = [n_train / 10, n_train * 1e3]
    with style() as Figure:
        fig = Figure(figsize=(6.4, 5.2))
        ax = fig.add_subplot()
        if quantile is not None:
            g = quantile
            xs += [float(g.n_gen.min()), float(g.n_gen.max())]
            fin = np.isfinite(g.gain)
            lim = ~fin & np.isfinite(g.gain_lo)  # MSE below the held-out sample's own noise: a lower limit
            gain = np.where(fin, g.gain, np.where(lim, g.gain_lo, 0.0))
            with np.errstate(invalid="ignore"):
                lo = np.where(fin, np.clip(gain - np.nan_to_num(g.gain_lo), 0, None), 0.0)
                hi = np.where(fin & np.isfinite(g.gain_hi), np.nan_to_num(g.gain_hi, posinf=0.0) - gain, 0.0)
            ax.errorbar(g.n_gen[fin], gain[fin], yerr=[lo[fin], hi[fin]], fmt="s", color=GEN_COLOR, markersize=5,
                        label=f"quantile MSE ($N_q$ = {g.n_quantiles})")
            if lim.any():
                ax.errorbar(g.n_gen[lim], gain[lim], yerr=0.4 * gain[lim], lolims=True, fmt="none",
                            color=GEN_COLOR, label="lower limit (68 % CL)")
            if np.isfinite(g.g_eff):
                ax.axhspan(g.g_eff_lo, g.g_eff_hi if np.isfinite(g.g_eff_hi) else 10 * g.g_eff, color=GEN_COLOR,
                           alpha=0.12, label=rf"$N_{{\rm eff}}/N_{{\rm train}}$ (quantile) = {g.g_eff:.3g}")
            data["quantile"] = g.to_dict()
        if ensemble is not None:
            e = ensemble
            grid = np.geomspace(min(xs + [float(e.n_gen.min())]), max(xs + [float(e.n_gen.max()) * 100]), 200)
            c_lo, c_hi = max(e.c - e.c_err, 0.0), max(e.c + e.c_err, 0.0)
            g_mid = e.gain_at(grid)
            g_up = e.a_expected / (e.a_expected / grid + c_lo) / e.n_train
            g_dn = e.a_expected / (e.a_expected / grid + c_hi) / e.n_train
            ax.plot(grid, g_mid, color=ALT_COLOR, label=f"ensemble fit (K = {e.n_members})")
            ax.fill_between(grid, g_dn, g_up, color=ALT_COLOR, alpha=0.2, linewidth=0)
            data["ensemble"] = e.to_dict()
            data["ensemble_curve"] = {"n_gen": grid, "gain": g_mid, "gain_lo": g_dn, "gain_hi": g_up}
            xs += [float(grid.min()), float(grid.max())]
        span = np.geomspace(min(xs), max(xs), 50)
        ax.plot(span, span / n_train, color="grey", linestyle="--", linewidth=1, label="i.i.d. true events")
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1, label=r"$G$ = 1")
        ax.axvline(watts_crow_bound(n_train), color="#2ca02c", linestyle="-.", linewidth=1,
                   label=r"$N_{\rm train}^{3/2}$ (Watts & Crow)")
        if n_gen_mark:
            ax.axvline(n_gen_mark, color="black", linewidth=0.8, alpha=0.6, label="template size")
            data["n_gen_mark"] = n_gen_mark
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$N_{\rm gen}$ (generated events in the category)")
        ax.set_ylabel(r"$G = n_{\rm equiv} / N_{\rm train}$")
        ax.set_xlim(min(xs), max(xs))
        lo_y = 0.3 * min([1.0] + ([float(np.nanmin(np.where(np.isfinite(quantile.gain), quantile.gain, np.inf)))]
                                   if quantile is not None and np.isfinite(quantile.gain).any() else []))
        ax.set_ylim(lo_y, 30 * max(1.0, max(xs) / n_train) ** 0.5)
        ax.legend(loc="lower right", fontsize="x-small", frameon=False)
        label(ax, extra=extra)
        fig.subplots_adjust(left=0.15, right=0.96, top=0.96, bottom=0.13)
    return fig, data


def variance_figure(ensemble: Any, *, extra: str = "") -> tuple[Any, dict[str, Any]]:
    r"""The ensemble variance :math:`\sum_b \mathrm{Var}_b` against :math:`N_\mathrm{gen}` and
    the fit :math:`a/N + c\,w`; the statistical term :math:`A/N` and the model floor :math:`c`."""
    e = ensemble
    grid = np.geomspace(float(e.n_gen.min()) / 2, float(e.n_gen.max()) * 20, 200)
    with style() as Figure:
        fig = Figure(figsize=(6.4, 5.2))
        ax = fig.add_subplot()
        ax.errorbar(e.n_gen, e.variance, yerr=e.variance_err, fmt="o", color=REF_COLOR, markersize=4,
                    label=f"ensemble spread (K = {e.n_members})")
        ax.plot(grid, e.a / grid + e.c, color=ALT_COLOR, label=rf"fit $a/N + c$: $a/A$ = {e.a / e.a_expected:.3f}")
        ax.plot(grid, e.a_expected / grid, color="grey", linestyle="--", linewidth=1, label=r"$A/N$ (statistics)")
        if e.c > 0:
            ax.axhline(e.c, color=GEN_COLOR, linestyle=":", linewidth=1.2, label=rf"$c$ = {e.c:.2e} (model)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$N_{\rm gen}$ per member")
        ax.set_ylabel(r"$\sum_b {\rm Var}(f_b)$")
        ax.legend(loc="upper right", fontsize="x-small", frameon=False)
        label(ax, extra=extra)
        fig.subplots_adjust(left=0.16, right=0.96, top=0.96, bottom=0.13)
    return fig, {"ensemble": e.to_dict(), "fit_curve": {"n_gen": grid, "variance": e.a / grid + e.c}}


def distance_figure(mem: Any, *, extra: str = "") -> tuple[Any, dict[str, Any]]:
    """Distributions of log10(distance to the nearest training event), generated vs held-out."""
    with style() as Figure:
        fig = Figure(figsize=(6.4, 5.0))
        ax = fig.add_subplot()
        ax.stairs(mem.hist_heldout, mem.hist_edges, color=REF_COLOR, linewidth=1.6, label="held-out → training")
        ax.stairs(mem.hist_generated, mem.hist_edges, color=GEN_COLOR, linewidth=1.6, label="generated → training")
        ax.axvline(np.log10(max(mem.threshold, 1e-300)), color="grey", linestyle=":",
                   label=f"closest {100 * mem.level:g} % (pooled)")
        ax.set_xlabel(r"$\log_{10}$ distance to nearest training event (standardised)")
        ax.set_ylabel("Fraction of events / bin")
        ax.set_ylim(0, 1.5 * max(float(mem.hist_heldout.max()), float(mem.hist_generated.max()), 1e-9))
        title = (f"median ratio = {mem.ratio:.3f} ± {mem.ratio_err:.3f}\nclose-pair p = {mem.close_p_value:.2g}, "
                 f"duplicates {mem.duplicates_generated}")
        ax.legend(loc="upper right", fontsize="x-small", title=title, title_fontsize="x-small", frameon=False)
        label(ax, extra=extra)
        fig.subplots_adjust(left=0.15, right=0.96, top=0.96, bottom=0.13)
    return fig, mem.to_dict()


def matrix_figure(matrix: np.ndarray, *, labels: Sequence[str] = (), title: str = "",
                  extra: str = "") -> tuple[Any, dict[str, Any]]:
    """A correlation matrix as a colour map in [-1, 1], values written in the cells when few."""
    m = np.asarray(matrix, dtype=np.float64)
    with style() as Figure:
        fig = Figure(figsize=(6.0, 5.2))
        ax = fig.add_subplot()
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r", origin="lower")
        fig.colorbar(im, ax=ax, label=title or "correlation")
        if len(m) <= 12:
            for i in range(len(m)):
                for j in range(len(m)):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize="xx-small")
        ticks = list(labels) or [str(i) for i in range(len(m))]
        ax.set_xticks(range(len(m)), ticks, fontsize="x-small")
        ax.set_yticks(range(len(m)), ticks, fontsize="x-small")
        ax.minorticks_off()
        if extra:
            ax.set_title(extra, fontsize="small")
    return fig, {"matrix": m, "labels": ticks}


def roc_figure(clf: Any, *, extra: str = "") -> tuple[Any, dict[str, Any]]:
    """The ROC curve of a :class:`~dyroot.twosample.ClassifierResult` against the diagonal."""
    with style() as Figure:
        fig = Figure(figsize=(5.6, 5.2))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="indistinguishable")
        ax.plot(clf.roc_fpr, clf.roc_tpr, color=GEN_COLOR,
                label=f"AUC = {clf.auc:.4f} ± {clf.auc_err:.4f}\n(z = {clf.z:.1f}, {clf.method})")
        ax.set_xlabel("Reference events called generated")
        ax.set_ylabel("Generated events called generated")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.25)
        ax.legend(loc="lower right", fontsize="x-small", frameon=False)
        label(ax, extra=extra)
        fig.subplots_adjust(left=0.15, right=0.96, top=0.96, bottom=0.13)
    return fig, clf.to_dict()


def errorbar_figure(
    names: Sequence[str],
    series: Mapping[str, tuple[Sequence[float], Sequence[float] | None]],
    *,
    ylabel: str = "",
    band: tuple[Sequence[float], Sequence[float]] | None = None,
    band_label: str = "",
    extra: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Values per category (x = category) with error bars, several series side by side.

    Args:
        names: the categories.
        series: ``{legend: (values, errors or None)}``.
        ylabel: the y-axis label.
        band: ``(low, high)`` per category, drawn as a grey band (e.g. the ±20 % δS criterion).
        band_label: its legend entry.
        extra: a line under the label.

    Returns:
        ``(figure, data)``.
    """
    x = np.arange(len(names), dtype=np.float64)
    colours = [GEN_COLOR, ALT_COLOR, REF_COLOR, "#2ca02c", "#9467bd"]
    with style() as Figure:
        fig = Figure(figsize=(7.0, 5.2))
        ax = fig.add_subplot()
        if band is not None:
            for i in range(len(names)):
                ax.fill_between([x[i] - 0.4, x[i] + 0.4], band[0][i], band[1][i], color="grey", alpha=0.2,
                                linewidth=0, label=band_label if i == 0 else None)
        k = max(len(series), 1)
        for j, (name, (vals, errs)) in enumerate(series.items()):
            off = (j - (k - 1) / 2) * 0.8 / k
            ax.errorbar(x + off, vals, yerr=errs, fmt="o", color=colours[j % len(colours)], markersize=4,
                        capsize=2, label=name)
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_xticks(x, list(names), rotation=30, ha="right", fontsize="x-small")
        ax.minorticks_off()
        ax.set_ylabel(ylabel)
        lim = ax.get_ylim()
        ax.set_ylim(lim[0], lim[1] + 0.45 * (lim[1] - lim[0]))
        ax.legend(loc="upper right", fontsize="x-small", frameon=False)
        label(ax, extra=extra)
        fig.subplots_adjust(left=0.15, right=0.96, top=0.96, bottom=0.22)
    data = {"categories": list(names), "series": {k: {"value": v, "error": e} for k, (v, e) in series.items()},
            "band": None if band is None else {"low": band[0], "high": band[1], "label": band_label}, "ylabel": ylabel}
    return fig, data


def line_figure(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "",
    ylabel: str = "",
    logx: bool = False,
    logy: bool = False,
    extra: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Curves sharing one x axis (e.g. training and validation loss per epoch)."""
    colours = [ALT_COLOR, GEN_COLOR, REF_COLOR, "#2ca02c", "#9467bd"]
    with style() as Figure:
        fig = Figure(figsize=(6.4, 5.0))
        ax = fig.add_subplot()
        for j, (name, y) in enumerate(curves.items()):
            ax.plot(x, y, color=colours[j % len(colours)], label=name)
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper right", fontsize="x-small", frameon=False)
        label(ax, extra=extra)
        fig.subplots_adjust(left=0.16, right=0.96, top=0.96, bottom=0.13)
    return fig, {"x": list(x), "curves": {k: list(v) for k, v in curves.items()}, "xlabel": xlabel, "ylabel": ylabel}
