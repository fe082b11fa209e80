r"""The spurious signal with its uncertainty split: template statistics vs model.

Orchestration for ``dyroot validate`` (RooFit is reached only through
:mod:`dyroot.scan`, the spurious-signal scan; this module never imports ROOT). Every
yield is scaled to the same luminosity (``ValidationConfig.lumi_fb``).

1. **The nominal template** (``--templates``, else one generated here with
   ``n_generate`` events and the validation seed) is scanned with the candidate
   functions (``spurious_functions``); per category the chosen function (the
   scan's choice; when none passes, the one with the smallest
   :math:`|S|/\delta S`) gives :math:`S_\mathrm{spur}`, the Higgs mass of the maximum
   :math:`m_H^*`, :math:`\delta S`, and :math:`\Delta_\mathrm{MC}`: the part of the
   fitted signal's uncertainty that comes from the template's own statistics. It
   shrinks like :math:`1/\sqrt{N_\mathrm{gen}}`.
2. **The model part**: every ensemble member generates its own template
   (``ensemble_events`` events, key ``seed + 1 + k``) that is fitted with the same
   function. At :math:`m_H^*` the spread of the fitted signal over members is
   :math:`\mathrm{Var}_k(\hat N_{S,k}) = \sigma^2_\mathrm{model} +
   \overline{\Delta^2_{\mathrm{MC},k}}`, so
   :math:`\sigma_\mathrm{model} = \sqrt{\max(0, \mathrm{Var}_k - \overline{\Delta^2_\mathrm{MC}})}`
   (relative precision about :math:`1/\sqrt{2(K-1)}`). It does not shrink with
   :math:`N_\mathrm{gen}`: it is the flow's own uncertainty (the variance of a model
   trained on :math:`N_\mathrm{train}` events, for bootstrap replicas).
3. **The training-size sample**: the training events' own :math:`m_{\mu\mu}`
   histogram (after the analysis selection, scaled to the nominal template's yield in
   the category), fitted with the same function: :math:`S_\mathrm{spur}` and its
   :math:`\Delta_\mathrm{MC}`, what one would have without the flow.

Example:
    >>> from dyroot.validate_spurious import model_spread
    >>> round(model_spread([10.0, 14.0, 12.0, 8.0], [1.0, 1.0, 1.0, 1.0])[0], 3)
    2.38
"""

from __future__ import annotations

import importlib.util
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["spurious_split", "model_spread"]


def model_spread(n_sig: Sequence[float], delta_mc: Sequence[float]) -> tuple[float, float, float]:
    r"""The model part of the fitted signal's uncertainty from an ensemble.

    Args:
        n_sig: the fitted signal of each member's template at the same :math:`m_H`.
        delta_mc: each template's statistical part :math:`\Delta_{\mathrm{MC},k}`.

    Returns:
        ``(sigma_model, its uncertainty, the raw spread)``: :math:`\sqrt{\max(0,
        s^2 - \overline{\Delta^2})}` with :math:`s` the sample standard deviation; the
        uncertainty from :math:`\mathrm{Var}(s^2) \simeq 2 s^4/(K-1)`.
    """
    x = np.asarray(n_sig, dtype=np.float64)
    d2 = float(np.mean(np.asarray(delta_mc, dtype=np.float64) ** 2))
    k = len(x)
    if k < 2:
        return float("nan"), float("nan"), float("nan")
    s2 = float(np.var(x, ddof=1))
    var_model = s2 - d2
    err_var = s2 * np.sqrt(2.0 / (k - 1))
    sigma = float(np.sqrt(max(var_model, 0.0)))
    # error on sqrt(v): dv / (2 sqrt v); near zero, quote sqrt of the variance error (an upper-scale)
    err = float(err_var / (2.0 * sigma)) if sigma > 0 and err_var < var_model else float(np.sqrt(err_var))
    return sigma, err, float(np.sqrt(s2))


_FACTORS = (1, 2, 5, 10, 25, 50)


def _rebin_factor(inputs: Sequence[Any]) -> int:
    """The smallest merge factor of :data:`_FACTORS` (dividing the bin count) that leaves no
    empty bin in any input: fits of sparse 0.1-GeV histograms with empty bins do not converge."""
    for f in _FACTORS:
        if all(len(c.counts) % f == 0 and np.all(c.counts.reshape(-1, f).sum(axis=1) > 0) for c in inputs):
            return f
    return _FACTORS[-1]


def _rebin(inputs: Sequence[Any], factor: int) -> list[Any]:
    from .scan import CategoryInput

    if factor == 1:
        return list(inputs)
    return [CategoryInput(c.name, c.edges[::factor], c.counts.reshape(-1, factor).sum(axis=1),
                          c.sumw2.reshape(-1, factor).sum(axis=1), c.scale) for c in inputs]


def _fallback_choice(verdicts: Sequence[Any], category: str) -> Any:
    cands = [v for v in verdicts if v.category == category and v.fits_ok and np.isfinite(v.z_spur)]
    return min(cands, key=lambda v: (abs(v.z_spur), v.n_params)) if cands else None


def _point(scan: Any, mh: float) -> Any:
    return min(scan.points, key=lambda p: abs(p.mh - mh))


def _scan(inputs: list[Any], functions: Mapping[str, str], cfg: Any) -> dict[str, Any]:
    """Scan each category with its own function; ``{category: FunctionScan}``."""
    from .functions import resolve_functions
    from .scan import ScanConfig, run_scan
    from .signal import SignalModel

    out: dict[str, Any] = {}
    for fname in sorted(set(functions.values())):
        sub = [c for c in inputs if functions.get(c.name) == fname]
        if not sub:
            continue
        res = run_scan(sub, SignalModel.default([c.name for c in sub]),
                       ScanConfig(lumi_fb=cfg.lumi_fb, masses=tuple(cfg.spurious_masses),
                                  functions=resolve_functions([fname]), workers=cfg.spurious_workers))
        for s, v in zip(res.scans, res.verdicts):
            out[s.category] = (s, v)
    return out


def _training_inputs(train: Mapping[str, np.ndarray], scheme: Any, edges: np.ndarray,
                     totals: Mapping[str, float]) -> list[Any]:
    """Category histograms of the training events, each scaled to the nominal template's yield.

    Both estimate the same expected yield at the luminosity; only the shape and the
    number of events differ, and the statistical part of the fit follows from the
    training sample's own size (its mean weight after scaling).
    """
    from .scan import CategoryInput

    w = np.asarray(train.get("weight", np.ones(len(train["mll"]))), dtype=np.float64)
    out = []
    for name, total in totals.items():
        m = train["category"] == scheme.names.index(name)
        c = np.histogram(train["mll"][m], edges, weights=w[m])[0].astype(np.float64)
        if not c.sum() > 0:
            continue
        s2 = np.histogram(train["mll"][m], edges, weights=w[m] ** 2)[0].astype(np.float64)
        k = total / c.sum()
        out.append(CategoryInput(name, edges, c * k, s2 * k * k, k))
    return out


def spurious_split(bundle: Any, members: list[Any], templates: Any, train: dict[str, Any] | None,
                   ref: dict[str, Any], scheme: Any, sel: Any, cfg: Any, out: dict[str, Any],
                   notes: list[str], member_events: list[dict[str, Any]] | None = None) -> None:
    """Fill ``out`` with the spurious-signal uncertainty split (see the module docstring).

    Args:
        bundle: the loaded bundle.
        members: loaded ensemble members (may be empty).
        templates: a templates file of the bundle, or ``None`` to generate one.
        train: the selected training events (or ``None``).
        ref: the selected reference events (unused; kept for symmetry with the other parts).
        scheme: the category scheme.
        sel: the analysis selection.
        cfg: the :class:`~dyroot.validate.ValidationConfig`.
        out: filled with ``rows``, ``header``, ``figure``, ``numbers`` and ``per_category``.
        notes: what was skipped is appended here.
        member_events: the selected events each member already generated (``ensemble_events``
            events, key ``seed + 1 + k``); histogrammed instead of generating them again.
    """
    if importlib.util.find_spec("ROOT") is None or importlib.util.find_spec("dyroot.scan") is None:
        out["skipped"] = "RooFit (PyROOT) or dyroot.scan is not available"
        notes.append("spurious: skipped, RooFit is not available")
        return
    from .exceptions import InputError
    from .functions import resolve_functions
    from .generate import generate_templates
    from .scan import ScanConfig, run_scan, template_inputs
    from .signal import SignalModel
    from .templates import Templates

    lumi = cfg.lumi_fb
    if templates is not None:
        t_nom = templates if isinstance(templates, Templates) else Templates.read(templates)
        h_t, h_b = t_nom.provenance.get("bundle_hash"), getattr(bundle, "hash", None)
        if h_t and h_b and h_t != h_b:
            msg = (f"the templates were generated by bundle {h_t[:12]}, not by the validated bundle {h_b[:12]}; "
                   "pass the templates of this bundle (or none, to generate them here)")
            raise InputError(msg)
        origin = f"templates file ({int(t_nom.provenance.get('n_events', 0))} events)"
    else:
        n_t = cfg.template_events or cfg.n_generate
        t_nom = generate_templates(bundle, n_t, cfg.seed, backend="torch", device=cfg.device, progress=False)
        origin = f"generated here ({n_t} events, seed {cfg.seed})"
    n_nom = int(t_nom.provenance.get("n_events", cfg.n_generate))
    names = [c for c in scheme.names if cfg.spurious_categories is None or c in cfg.spurious_categories]
    nominal = [c for c in template_inputs(t_nom, lumi, categories=names) if c.counts.sum() > 0]
    names = [c.name for c in nominal]
    if not nominal:
        out["skipped"] = "the nominal template is empty in every category"
        return
    if member_events is not None and len(member_events) == len(members):
        member_templates = []
        for mb, ev in zip(members, member_events):
            t_k = Templates.empty(t_nom.binning, scheme.names, provenance={
                "n_events": cfg.ensemble_events, "sigma_pb": mb.config.get("sigma_pb"),
                "bundle_hash": getattr(mb, "hash", None)})
            t_k.fill({t_nom.binning.variable: ev[t_nom.binning.variable]}, ev["category"])
            member_templates.append(t_k)
    else:
        member_templates = [generate_templates(mb, cfg.ensemble_events, cfg.seed + 1 + k, backend="torch",
                                               device=cfg.device, progress=False) for k, mb in enumerate(members)]
    member_inputs = [[c for c in template_inputs(t_k, lumi, categories=names) if c.counts.sum() > 0]
                     for t_k in member_templates]
    factor = _rebin_factor(nominal + [c for m in member_inputs for c in m])
    nominal = _rebin(nominal, factor)
    res = run_scan(nominal, SignalModel.default(names),
                   ScanConfig(lumi_fb=lumi, masses=tuple(cfg.spurious_masses),
                              functions=resolve_functions(list(cfg.spurious_functions)), workers=cfg.spurious_workers))
    chosen: dict[str, str] = {}
    per: dict[str, dict[str, Any]] = {}
    for name in names:
        fname = res.chosen.get(name)
        v = next((x for x in res.verdicts if x.category == name and x.function == fname), None)
        how = "chosen by the scan"
        if v is None:
            v = _fallback_choice(res.verdicts, name)
            how = "none passes; smallest |S|/dS"
        if v is None:
            notes.append(f"spurious: no converged fit in {name}")
            continue
        chosen[name] = v.function
        p = _point(res.scan(name, v.function), v.mh_at_max)
        per[name] = {"function": v.function, "how": how, "s_spur": v.s_spur, "mh": v.mh_at_max, "n_sig": p.n_sig,
                     "delta_mc": p.delta_mc, "delta_s": p.delta_s, "z_spur": v.z_spur, "passed": v.passed}
    if members:
        fits: dict[str, list[tuple[float, float, float]]] = {n: [] for n in chosen}
        for inputs in member_inputs:
            inputs = _rebin([c for c in inputs if c.name in chosen], factor)
            for name, (s, v) in _scan(inputs, chosen, cfg).items():
                p = _point(s, per[name]["mh"])
                if p.ok and np.isfinite(p.n_sig) and np.isfinite(p.delta_mc):
                    fits[name].append((p.n_sig, p.delta_mc, v.s_spur))
                else:
                    notes.append(f"spurious: a member's fit in {name} did not converge; left out of the spread")
        for name, rows in fits.items():
            per[name]["n_members_fitted"] = len(rows)
            if len(rows) >= 2:
                sig, err, raw = model_spread([r[0] for r in rows], [r[1] for r in rows])
                per[name].update({"sigma_model": sig, "sigma_model_err": err, "member_spread": raw,
                                  "member_n_sig": [r[0] for r in rows], "member_delta_mc": [r[1] for r in rows],
                                  "member_s_spur": [r[2] for r in rows]})
    if train is not None and len(train["mll"]) > 0:
        totals = {c.name: float(c.counts.sum()) for c in nominal if c.name in chosen}
        inputs = _training_inputs(train, scheme, t_nom.binning.edges(), totals)
        f_train = max(factor, _rebin_factor(inputs))
        for name, (s, v) in _scan(_rebin(inputs, f_train), chosen, cfg).items():
            p = _point(s, v.mh_at_max)
            if not (v.fits_ok and np.isfinite(v.s_spur)):
                notes.append(f"spurious: the fit to the training-size sample in {name} did not converge")
                continue
            p_star = _point(s, per[name]["mh"])  # at the nominal's m_H*, for the figure
            per[name].update({"n_sig_train_at_mh": p_star.n_sig, "delta_mc_train_at_mh": p_star.delta_mc})
            per[name].update({"s_spur_train": v.s_spur, "mh_train": v.mh_at_max, "n_sig_train": p.n_sig,
                              "delta_mc_train": p.delta_mc,
                              "bin_width_train": float((inputs[0].edges[1] - inputs[0].edges[0]) * f_train)})
    out["bin_width"] = float((nominal[0].edges[1] - nominal[0].edges[0]))
    _tabulate(per, n_nom, origin, bool(members), cfg, out)


def _tabulate(per: dict[str, dict[str, Any]], n_nom: int, origin: str, with_members: bool, cfg: Any,
              out: dict[str, Any]) -> None:
    from .report import format_value

    header = ["category", "function", "m_H* [GeV]", "S_spur (template)", "Delta_MC (template stat.)",
              "sigma_model (ensemble)", "S_spur (training-size sample)", "delta S (data stat.)", "0.2 delta S"]
    rows, cats, series_t, series_m, series_r, band_lo, band_hi = [], [], [], [], [], [], []
    numbers: dict[str, Any] = {}
    for name, d in per.items():
        sm = d.get("sigma_model")
        rows.append([name, d["function"], f"{d['mh']:g}", f"{d['s_spur']:.3g}", f"{d['delta_mc']:.3g}",
                     format_value(sm, d.get("sigma_model_err")) if sm is not None else "n/a (no ensemble)",
                     format_value(d["s_spur_train"], d["delta_mc_train"]) if "s_spur_train" in d else "n/a",
                     f"{d['delta_s']:.3g}", f"{0.2 * d['delta_s']:.3g}"])
        cats.append(name)
        ds = d["delta_s"]  # the figure is in units of delta S, where the criterion is |S| < 0.2 delta S
        series_t.append((d["n_sig"] / ds, d["delta_mc"] / ds))
        series_m.append((d["n_sig"] / ds, float(np.hypot(d["delta_mc"], sm)) / ds if sm is not None else np.nan))
        series_r.append((d.get("n_sig_train_at_mh", np.nan) / ds, d.get("delta_mc_train_at_mh", np.nan) / ds))
        band_lo.append(-0.2)
        band_hi.append(0.2)
        numbers[f"s_spur_{name}"] = {"label": f"S_spur {name} ({d['function']}, template)", "value": d["s_spur"],
                                     "error": d["delta_mc"], "note": "error: template statistics (Delta_MC)"}
        if sm is not None:
            numbers[f"sigma_model_{name}"] = {"label": f"model uncertainty of N_S at m_H* = {d['mh']:g} GeV, {name}",
                                              "value": sm, "error": d.get("sigma_model_err"),
                                              "note": "ensemble spread minus its template statistics"}
        if "s_spur_train" in d:
            numbers[f"s_spur_train_{name}"] = {"label": f"S_spur {name}, training-size sample", "value": d["s_spur_train"],
                                               "error": d["delta_mc_train"], "note": "error: its own statistics"}
    series = {rf"template, $N_{{gen}}$ = {n_nom:.3g} ($\pm\Delta_{{MC}}$)": ([a for a, _ in series_t],
                                                                            [b for _, b in series_t])}
    if with_members:
        series[r"template ($\pm\Delta_{MC} \oplus \sigma_{model}$)"] = ([a for a, _ in series_m], [b for _, b in series_m])
    if any(np.isfinite(a) for a, _ in series_r):
        series["training-size sample"] = ([a for a, _ in series_r], [b for _, b in series_r])
    out.update({
        "lumi_fb": cfg.lumi_fb, "nominal": origin, "n_nominal": n_nom, "per_category": per, "header": header,
        "rows": rows, "numbers": numbers,
        "caption": (f"Fitted signal at m_H* (the mass of the largest |N_S| on the nominal template), {cfg.lumi_fb:g} "
                    f"fb^-1; nominal template: {origin}, fitted in {out.get('bin_width', 0.1):g} GeV bins (sparse "
                    "histograms are merged until no bin is empty). Delta_MC scales as 1/sqrt(N_gen); sigma_model "
                    "does not."),
        "figure": {"categories": cats, "series": series, "band": (band_lo, band_hi), "band_label": "±0.2 δS",
                   "ylabel": r"fitted signal $\hat N_S(m_H^*)\ /\ \delta S$",
                   "caption": "Fitted signal at m_H* per category in units of δS (the data's statistical "
                              "uncertainty): the nominal template with its statistical error, with the model "
                              "uncertainty added, and the training-size sample alone; grey: the ±0.2 δS criterion."},
    })
