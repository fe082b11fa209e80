r"""Plots of event samples: the dimuon mass spectrum per category.

Boundary module (matplotlib and mplhep, imported inside the functions; never ROOT).
Figures are built on ``matplotlib.figure.Figure`` without pyplot, so no GUI backend
is touched and nothing stays registered globally; PNGs are written atomically
(temporary file, then rename).

* :func:`mll_per_category_figure`: :math:`d\sigma/dm_{\mu\mu}` (pb/GeV) of the whole
  sample and of each category, log scale, the fit range (110-160 GeV) marked.
* :func:`save_png`: write a figure without leaving a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .exceptions import ConfigError, OutputExistsError
from .features import DEFAULT_CATEGORIES, CategoryScheme

__all__ = ["mll_per_category_figure", "save_png", "plot_mll_per_category"]

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def _rc() -> dict[str, Any]:
    try:
        import mplhep

        rc = dict(mplhep.style.ATLAS)
    except ModuleNotFoundError:  # plain matplotlib with ROOT-like ticks
        rc = {"xtick.direction": "in", "ytick.direction": "in", "xtick.top": True, "ytick.right": True}
    # "custom" mathtext looks up a 'cursive' calligraphic font that most machines lack (a log line per plot).
    rc.update({"font.size": 14, "legend.fontsize": "small", "mathtext.cal": "sans"})
    return rc


def mll_per_category_figure(
    events: Mapping[str, np.ndarray],
    *,
    categories: CategoryScheme = DEFAULT_CATEGORIES,
    mll_range: tuple[float, float] = (100.0, 200.0),
    bin_width: float = 1.0,
    window: tuple[float, float] | None = (110.0, 160.0),
    title: str = "",
) -> tuple[Any, dict[str, Any]]:
    r"""The :math:`m_{\mu\mu}` spectrum of every category, and of all events, on a log scale.

    Args:
        events: event columns with ``mll`` (GeV), ``category`` and ``weight``
            (pb per event; unit weights give events per GeV).
        categories: the scheme that gives the category names.
        mll_range: the plotted range in GeV.
        bin_width: bin width in GeV.
        window: the fit range to mark (shaded), ``None`` for none.
        title: a line of text under the label (the sample, e.g. "Pythia 8 Z/gamma* -> mumu").

    Returns:
        ``(figure, data)``: a ``matplotlib.figure.Figure`` and a JSON-ready dict with the
        bin edges, the contents per histogram (pb/GeV) and the weighted fraction of each
        category inside ``window``.

    Raises:
        ConfigError: ``events`` lacks ``mll``, ``category`` or ``weight``, or the range is empty.
    """
    from ._optional import import_optional

    matplotlib = import_optional("matplotlib")
    from matplotlib.figure import Figure

    missing = [k for k in ("mll", "category", "weight") if k not in events]
    if missing:
        raise ConfigError(f"events lack {missing}; pass the columns read by dyroot.io.read_events")
    lo, hi = mll_range
    if not hi > lo or bin_width <= 0:
        raise ConfigError(f"bad plot range {mll_range} / bin width {bin_width} GeV")
    edges = np.arange(lo, hi + 0.5 * bin_width, bin_width)
    m, cat, w = (np.asarray(events[k]) for k in ("mll", "category", "weight"))
    data: dict[str, Any] = {"edges": edges.tolist(), "units": "pb/GeV", "histograms": {}, "window_fraction": {}}
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(8, 6.5))
        ax = fig.add_subplot()
        h, _ = np.histogram(m, edges, weights=w)
        ax.stairs(h / bin_width, edges, color="black", linewidth=2.0, label="all events")
        data["histograms"]["inclusive"] = (h / bin_width).tolist()
        for i, name in enumerate(categories.names):
            sel = cat == i
            hc, _ = np.histogram(m[sel], edges, weights=w[sel])
            ax.stairs(hc / bin_width, edges, color=_COLORS[i % len(_COLORS)], linewidth=1.5,
                      label=name.replace("_", " "))
            data["histograms"][name] = (hc / bin_width).tolist()
            if window is not None:
                inw = sel & (m >= window[0]) & (m < window[1])
                data["window_fraction"][name] = float(w[inw].sum() / w.sum()) if w.sum() > 0 else 0.0
        if window is not None:
            ax.axvspan(window[0], window[1], color="0.85", alpha=0.5, zorder=0,
                       label=f"fit range {window[0]:g}-{window[1]:g} GeV")
            for x in window:
                ax.axvline(x, color="0.4", linestyle="--", linewidth=1.0)
        ax.set_yscale("log")
        positive = h[h > 0]
        if positive.size:
            ax.set_ylim(positive.min() / bin_width / 30.0, positive.max() / bin_width * 300.0)
        ax.set_xlim(lo, hi)
        ax.set_xlabel(r"$m_{\mu\mu}$ [GeV]")
        ax.set_ylabel(r"$d\sigma/dm_{\mu\mu}$ [pb/GeV]")
        ax.legend(loc="upper right", ncol=2, frameon=False, fontsize="x-small")
        ax.text(0.04, 0.97, "dyroot", transform=ax.transAxes, va="top", fontweight="bold", fontstyle="italic")
        if title:
            ax.set_title(title, loc="left", fontsize="small")
        fig.tight_layout()
    return fig, data


def save_png(fig: Any, path: str | os.PathLike[str], *, force: bool = False, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG through a temporary file in the same directory.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
    """
    out = Path(path)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass force=True (--force) to overwrite it")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}.png"
    from ._optional import import_optional

    matplotlib = import_optional("matplotlib")
    try:
        with matplotlib.rc_context(_rc()):  # text is laid out at save time: same fonts as when drawn
            fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def plot_mll_per_category(events: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
                          force: bool = False, **kwargs: Any) -> dict[str, Any]:
    """:func:`mll_per_category_figure` written to a PNG; returns the plotted numbers.

    Example:
        >>> from dyroot.io import read_events  # doctest: +SKIP
        >>> plot_mll_per_category(read_events("ref.root"), "mll.png")  # doctest: +SKIP
    """
    fig, data = mll_per_category_figure(events, **kwargs)
    save_png(fig, path, force=force)
    return data
