r"""The report of ``dyroot validate``: one section per question, from a :class:`~dyroot.validate.ValidationResult`.

Boundary module (matplotlib through :mod:`dyroot.figures`; never ROOT). Each
``*_section`` function turns one part of the result into a
:class:`~dyroot.report.Section` (text that says what was measured and how to read it,
key numbers with uncertainties, tables, figures with their data), so the end-to-end
report of ``dyroot run`` can reuse any of them; :func:`build_report` assembles all.

Example:
    >>> from dyroot.validate import ValidationConfig, ValidationResult
    >>> rep = build_report(ValidationResult(ValidationConfig()), title="empty")
    >>> [s.title for s in rep.sections][:2]
    ['Summary', 'Inputs']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .report import Report, Section, format_value

__all__ = [
    "build_report",
    "summary_section",
    "inputs_section",
    "fidelity_section",
    "amplification_section",
    "spurious_section",
    "memorisation_section",
    "streams_section",
]

_VERDICT_TEXT = {True: "PASS", False: "FAIL", None: "information"}


def _p(p: float) -> str:
    return f"{p:.2g}"


def _interval(v: float, lo: float, hi: float, limit95: float | None = None) -> str:
    """``v -a +b`` from a 68 % interval ``[lo, hi]``; a lower limit when ``v`` is infinite."""
    v, lo, hi = float(v), float(lo), float(hi)
    if not np.isfinite(v):
        lim = limit95 if limit95 is not None and np.isfinite(limit95) else lo
        return f"> {lim:.3g} (95 % CL)" if limit95 is not None else f"> {lim:.3g} (68 % CL)"
    return format_value(v, (v - lo, (hi - v) if np.isfinite(hi) else np.inf))


def _g_eff(q: Any) -> str:
    """The quantile method's asymptotic G_eff with its interval."""
    return _interval(q.g_eff, q.g_eff_lo, q.g_eff_hi, q.g_eff_limit95)


def _gain(e: Any) -> str:
    """The ensemble's G with its interval."""
    return _interval(e.gain, e.gain_lo, e.gain_hi, e.gain_limit95)


def _selection_text(sel: dict[str, Any]) -> str:
    """A selection record in words, e.g. ``leading pT > 27 GeV, ...``."""
    if not sel:
        return "none"
    parts = [f"leading pT > {sel.get('lead_pt')} GeV", f"subleading pT > {sel.get('sublead_pt')} GeV",
             f"|eta| < {sel.get('max_abs_eta')}"]
    if sel.get("opposite_charge"):
        parts.append("opposite charges")
    if sel.get("mll_range"):
        lo, hi = sel["mll_range"]
        parts.append(f"{lo:g} <= m_mumu < {hi:g} GeV")
    return ", ".join(parts)


def _number(sec: Section, label: str, v: float, lo: float, hi: float, *, limit95: float | None = None,
            unit: str = "", note: str = "", key: str = "") -> None:
    """A key number from a 68 % interval (a lower limit, as text, when the value is infinite)."""
    if np.isfinite(v):
        sec.number(label, float(v), (float(v - lo), float(hi - v) if np.isfinite(hi) else np.inf), unit, note=note,
                   key=key)
    else:
        sec.number(label, _interval(v, lo, hi, limit95), unit=unit, note=note, key=key)


def summary_section(res: Any) -> Section:
    """The verdicts of every part and the headline numbers."""
    sec = Section("Summary")
    v = res.verdicts()
    sec.text("Are the generated events statistically sound? Each part below answers one question: do they follow "
             "the held-out reference (fidelity), how many true events are they worth (amplification), how large "
             "is the spurious signal's uncertainty from the template and from the model, did the model copy its "
             "training events (memorisation), and are parallel random streams independent (streams).")
    rows = [[name, _VERDICT_TEXT[ok]] for name, ok in v.items()]
    sec.table(["part", "verdict"], rows)
    incl = (res.amplification.get("per_category") or {}).get("inclusive") or {}
    ens = incl.get("ensemble")
    if ens is not None:
        _number(sec, "G = N_eff/N_train, m_mumu inclusive (ensemble)", ens.gain, ens.gain_lo, ens.gain_hi,
                limit95=ens.gain_limit95, note=f"K = {ens.n_members} members", key="gain_ensemble_inclusive")
    q = incl.get("quantile")
    if q is not None:
        _number(sec, "G at the largest N_gen, m_mumu inclusive (quantile MSE)", q.gain[-1], q.gain_lo[-1],
                q.gain_hi[-1], note=f"N_gen = {int(q.n_gen[-1])}", key="gain_quantile_inclusive")
    mem = res.memorisation.get("result")
    if mem is not None:
        sec.number("memorisation verdict", mem.verdict, note=f"close-pair p = {_p(mem.close_p_value)}",
                   key="memorisation")
    failed = [k for k, ok in v.items() if ok is False]
    sec.verdict(None if all(ok is None for ok in v.values()) else not failed,
                "every test passed" if not failed else f"failed: {', '.join(failed)}")
    for note in res.notes:
        sec.text(f"Note: {note}")
    return sec


def inputs_section(res: Any) -> Section:
    """What was compared with what: files, hashes, sample sizes, selection, categories."""
    sec = Section("Inputs")
    i = res.inputs
    sec.text("Generated events come from the bundle's torch sampler on dyroot's counter-based Philox streams "
             "(event i of a seed is the same event in every backend). The analysis selection is applied to "
             "generated, reference and training events alike.")
    rows = [["bundle", i.get("bundle", ""), (i.get("bundle_hash") or "")[:16]],
            ["reference (held-out)", (i.get("reference") or {}).get("source", ""),
             ((i.get("reference") or {}).get("sha256") or "")[:16]],
            ["training", (i.get("training") or {}).get("source", (i.get("training") or {}).get("skipped", "")),
             ((i.get("training") or {}).get("sha256") or "")[:16]]]
    sec.table(["input", "source", "sha256 (first 16)"], rows)
    sizes = [["generated (before cuts)", i.get("n_generated")], ["generated, selected", i.get("n_generated_selected")],
             ["reference, selected", i.get("n_reference_selected")], ["training, selected", i.get("n_training_selected")]]
    if i.get("ensemble_members"):
        sizes.append([f"ensemble members ({i.get('ensemble_mode')})", i.get("ensemble_members")])
        sizes.append(["events per member (before cuts)", i.get("ensemble_events")])
    sec.table(["sample", "events"], [[a, "n/a" if b is None else b] for a, b in sizes])
    if (i.get("training") or {}).get("split"):
        sec.text(f"Training events: {i['training']['split']}.")
    sec.text(f"Selection: {_selection_text(i.get('selection') or {})}; categories: "
             f"{', '.join(i.get('categories') or [])}.")
    return sec


def fidelity_section(res: Any, *, max_figures: int = 40) -> Section:
    """Generated vs held-out: histograms with ratio and pulls, chi2/ndf, KS, fractions, classifier."""
    from .figures import VARIABLE_LABELS, comparison_figure, roc_figure

    f = res.fidelity
    sec = Section("Fidelity: generated vs held-out reference")
    if not f:
        sec.text("Not run.")
        return sec
    sec.text("Each variable is histogrammed for the generated and the held-out reference events that pass the "
             "analysis selection, inclusively and per category, both normalised to unit area. The chi2 uses "
             "pooled-expected per-bin errors (sum of squared weights for the reference), ndf = bins - 1; KS is "
             "unbinned, with Kish effective sizes for weighted events. Values outside the plotted range are "
             "counted in the first/last bin.")
    sec.text(f"Verdict rule: a test fails when p < alpha / (number of tests) = {f['threshold']:.2g} "
             f"(alpha = {res.config.alpha:g}, {f['n_tests']} tests, Bonferroni).")
    rows, shown = [], 0
    for c in f["comparisons"]:
        rows.append([c["variable"], c["category"], c["n_gen"], c["n_ref"], f"{c['chi2'].chi2:.1f}/{c['chi2'].ndf}",
                     _p(c["chi2"].p_value), f"{c['ks'].statistic:.4f}", _p(c["ks"].p_value)])
        if shown < max_figures and (c["variable"] == "mll" or c["category"] == "inclusive"):
            fig, data = comparison_figure(c["edges"], c["counts_gen"], c["counts_ref"], c["sumw2_gen"], c["sumw2_ref"],
                                          xlabel=VARIABLE_LABELS.get(c["variable"], c["variable"]),
                                          extra=f"{c['category']}: {c['n_gen']} gen., {c['n_ref']} ref.",
                                          ks_p_value=c["ks"].p_value, logy=c["variable"] in ("ptll", "mu1_pt", "mu2_pt"))
            data.update({"variable": c["variable"], "category": c["category"]})
            sec.figure(f"fidelity_{c['variable']}_{c['category']}", fig, data,
                       f"{c['variable']} ({c['category']}): normalised generated (red) and held-out (black) events; "
                       "ratio and pulls below.")
            shown += 1
    sec.table(["variable", "category", "N gen", "N ref", "chi2/ndf", "p", "KS D", "KS p"], rows,
              "Every comparison (figures: m_mumu per category, every variable inclusive).")
    cf = f["category_fractions"]
    ng, nr = np.asarray(cf["n_gen"]), np.asarray(cf["sumw_ref"])
    sg, sr = ng.sum(), nr.sum()
    frows = []
    for k, name in enumerate(cf["names"]):
        fg, fr = ng[k] / sg, nr[k] / sr
        eg = np.sqrt(fg * (1 - fg) / sg)
        er = np.sqrt(cf["sumw2_ref"][k]) / sr
        frows.append([name, format_value(fg, eg), format_value(fr, er), format_value(fg / fr - 1, np.hypot(eg / fr, fg * er / fr**2))
                      if fr > 0 else "n/a"])
    sec.table(["category", "fraction (generated)", "fraction (reference)", "relative difference"], frows,
              f"Category fractions among selected events: chi2/ndf = {cf['chi2'].chi2:.1f}/{cf['chi2'].ndf}, "
              f"p = {_p(cf['chi2'].p_value)}.")
    clf = f.get("classifier")
    if clf is not None:
        sec.text("Classifier two-sample test: a small neural network (SiLU MLP) learns to tell generated from "
                 f"reference events ({', '.join(clf.features)}, standardised) on half of each sample; on the other "
                 "half an AUC of 0.5 means it found no difference. Uncertainty: "
                 + ("DeLong's." if clf.method == "delong" else "bootstrap of the test half (weighted reference)."))
        sec.number("classifier AUC (test half)", clf.auc, clf.auc_err, note=f"z = {clf.z:.1f}, one-sided p = "
                   f"{_p(clf.p_value)}; {clf.n_test} test events", key="classifier_auc")
        fig, data = roc_figure(clf, extra=f"{clf.n_test} test events")
        sec.figure("fidelity_classifier_roc", fig, data, "ROC curve of the classifier two-sample test.")
    sec.verdict(f["passed"], "no significant difference" if f["passed"]
                else f"significant differences: {', '.join(f['failing'][:12])}" + (" ..." if len(f["failing"]) > 12 else ""))
    return sec


def amplification_section(res: Any) -> Section:
    """G and N_eff for the m_mumu template per category, both methods, with figures."""
    from .figures import gain_figure, variance_figure

    a = res.amplification
    sec = Section("Amplification: how many true events are the generated ones worth?")
    if not a:
        sec.text("Not run.")
        return sec
    lo, hi = a["mll_range"]
    sec.text(f"For the m_mumu template in {lo:g}-{hi:g} GeV, per category. Quantile MSE (Butter et al., "
             "arXiv:2008.06545): the held-out events define N_q equiprobable quantiles; the generated fractions' "
             "mean squared deviation gives the number of true events n_equiv with the same error, G = "
             "n_equiv/N_train. The held-out sample's own noise is subtracted, so n_equiv is only resolved up to "
             "about the held-out size. Ensemble variance (Bahl et al., arXiv:2509.08048): K flows trained on "
             "bootstrap replicas or disjoint subsets each generate events; the spread of each region's fraction "
             "is fitted as Var(N_gen) = a/N_gen + c, N_eff = sum I(1-I) / c, G = N_eff/N_train (per member). "
             "Watts & Crow (arXiv:2412.18041): information is preserved only for N_gen >= N_train^(3/2).")
    rows = []
    for name, e in (a.get("per_category") or {}).items():
        q, ens = e.get("quantile"), e.get("ensemble")
        row = [name, "n/a" if e.get("n_train") is None else f"{e['n_train']:.0f}", f"{e['n_truth']:.0f}", e["n_gen"]]
        if q is not None:
            row += [_interval(q.gain[-1], q.gain_lo[-1], q.gain_hi[-1]), _g_eff(q)]
        else:
            row += ["n/a", "n/a"]
        if ens is not None:
            row += [_interval(ens.n_eff, ens.n_eff_lo, ens.n_eff_hi, ens.n_eff_limit95),
                    _gain(ens), f"{ens.a / ens.a_expected:.3f}"]
            _number(sec, f"N_eff, m_mumu {name} (ensemble)", ens.n_eff, ens.n_eff_lo, ens.n_eff_hi,
                    limit95=ens.n_eff_limit95, unit="events", key=f"n_eff_{name}")
            _number(sec, f"G = N_eff/N_train, m_mumu {name} (ensemble)", ens.gain, ens.gain_lo, ens.gain_hi,
                    limit95=ens.gain_limit95, key=f"gain_{name}")
        else:
            row += ["n/a", "n/a", "n/a"]
        rows.append(row)
        if q is not None or ens is not None:
            if e.get("n_train"):
                fig, data = gain_figure(e["n_train"], q, ens, extra=f"m_mumu, {name}")
                sec.figure(f"gain_{name}", fig, data, f"G against the number of generated events, {name}: squares "
                           "from the quantile MSE (68 % intervals), the band from the ensemble fit.")
            if ens is not None:
                fig, data = variance_figure(ens, extra=f"m_mumu, {name}")
                sec.figure(f"ensemble_variance_{name}", fig, data, f"Ensemble spread of the region fractions vs "
                           f"N_gen, {name}, and the fit a/N + c.")
    sec.table(["category", "N_train", "N held-out", "N_gen", "G(N_gen max), quantile", "G_eff (quantile asymptote)",
               "N_eff (ensemble)", "G (ensemble)", "a/A (closure)"], rows,
              "Uncertainties 68 %; quantile G_eff is the n -> infinity limit from the model's own MSE; the ensemble "
              f"uses {res.config.region_width:g}-GeV regions.")
    same = [(name, e["quantile"], e["ensemble_on_quantiles"]) for name, e in (a.get("per_category") or {}).items()
            if e.get("quantile") is not None and e.get("ensemble_on_quantiles") is not None]
    if same:
        sec.table(["category", "N_q", "G_eff, this model vs truth (quantile MSE)", "G, ensemble spread (same quantiles)"],
                  [[n, q.n_quantiles, _g_eff(q), _gain(e)] for n, q, e in same],
                  "Both methods on the same regions (the held-out quantiles). The quantile MSE measures this model's "
                  "squared deviation from the truth (bias and variance, one realisation); the ensemble its expected "
                  "variance over trainings. A quantile G well below the ensemble's points to a bias the ensemble "
                  "cannot see; well above, to a lucky model.")
    scan = a.get("resolution_scan") or []
    if scan:
        sec.table(["regions (inclusive m_mumu)", "G_eff, this model (quantile MSE)", "G, ensemble spread"],
                  [[r["regions"], _g_eff(r["quantile"]) if "quantile" in r else "n/a",
                    _gain(r["ensemble"]) if "ensemble" in r else "n/a"] for r in scan],
                  "G depends on the resolution at which the shape is probed: a smooth model error spread over more "
                  "regions weighs less per region, so n_equiv grows with their number. Quote G at the resolution "
                  "that matters, e.g. regions of about the signal width (sigma_CB = 2.5-3 GeV) for the spurious "
                  "signal.")
    sec.verdict(None, "informative: G > 1 means the generated events carry more information than the training "
                "set; G <= 1 means generating more does not help")
    return sec


def spurious_section(res: Any) -> Section:
    """The spurious signal with its template-statistics and model uncertainties."""
    from .figures import errorbar_figure

    s = res.spurious
    sec = Section("Spurious signal: template statistics vs model uncertainty")
    if not s or s.get("skipped"):
        sec.text(f"Not run: {s.get('skipped', 'disabled') if s else 'disabled'}.")
        return sec
    sec.text("S_spur = max over m_H of |fitted signal| in a signal+background fit to the background-only template, "
             f"scaled to {s.get('lumi_fb', res.config.lumi_fb):g} fb^-1. Its uncertainty has two parts: the "
             "template's own statistics (Delta_MC, from the fit; shrinks as 1/sqrt(N_gen)) and the model's "
             "(the spread of S_spur over the ensemble members' templates, minus their statistical part; does not "
             "shrink). Next to it, S_spur from a sample of the training size alone (what one would have without "
             "the flow).")
    rows = s.get("rows") or []
    if rows:
        sec.table(list(s["header"]), rows, s.get("caption", ""))
    fig_data = s.get("figure")
    if fig_data:
        fig, data = errorbar_figure(fig_data["categories"], fig_data["series"], ylabel=fig_data.get("ylabel", ""),
                                    band=fig_data.get("band"), band_label=fig_data.get("band_label", ""))
        sec.figure("spurious_split", fig, data, fig_data.get("caption", "S_spur per category with its uncertainties."))
    for key, n in (s.get("numbers") or {}).items():
        sec.number(n["label"], n["value"], n.get("error"), n.get("unit", "events"), note=n.get("note", ""), key=key)
    sec.verdict(None, "informative")
    return sec


def memorisation_section(res: Any) -> Section:
    """Nearest-training distances, generated vs held-out, and exact duplicates."""
    from .figures import distance_figure

    sec = Section("Memorisation: did the model copy its training events?")
    m = res.memorisation.get("result")
    if m is None:
        sec.text(f"Not run: {res.memorisation.get('skipped', 'disabled')}.")
        return sec
    feats = ", ".join(res.memorisation.get("features", []))
    sec.text(f"In standardised features ({feats}; training mean and standard deviation), every generated and every "
             "held-out event is matched to its nearest training event (KD-tree). A model that copies training events "
             "puts generated events closer to them than independent events are. The close-pair test compares the "
             f"fractions of each sample in the closest {100 * m.level:g} % of all distances (Fisher exact, one-sided); "
             "exact duplicates (float32) of a training row are counted; the ratio of median distances is 1 for a "
             "sound generator (> 1: broader than the truth, < 1: concentrated on the training events).")
    sec.number("median distance ratio (generated / held-out)", m.ratio, m.ratio_err, key="nn_ratio")
    sec.number("close pairs: generated / held-out fraction", f"{m.frac_generated_close:.4f} / {m.frac_heldout_close:.4f}",
               note=f"Fisher p = {_p(m.close_p_value)}", key="close_fractions")
    sec.number("exact duplicates of training events (generated / held-out)",
               f"{m.duplicates_generated} / {m.duplicates_heldout}", note=f"Fisher p = {_p(m.duplicates_p_value)}",
               key="duplicates")
    sec.number("Mann-Whitney p (generated closer)", m.mannwhitney_p_value, key="mannwhitney_p")
    fig, data = distance_figure(m, extra=f"{m.n_generated} gen., {m.n_heldout} held-out, {m.n_train} training")
    sec.figure("memorisation_distances", fig, data, "Distance to the nearest training event: generated (red) vs "
               "held-out (black).")
    sec.verdict(not m.memorised, f"{m.verdict} (p-values against alpha = {m.alpha:g})")
    return sec


def streams_section(res: Any) -> Section:
    """Noise streams, shard-to-shard correlation, bit-identical reruns."""
    from .figures import matrix_figure

    s = res.streams
    sec = Section("Independent streams")
    if not s:
        sec.text("Not run.")
        return sec
    n = s["noise"]
    sec.text("Every event's noise is Philox4x32-10 keyed by the seed, with the global event index as counter. "
             f"Noise level: {n.n_shards} shards of {n.shard_size} consecutive events of seed {n.seed}, and the same "
             f"range of seed {n.other_seed}, compared vector by vector; the per-shard histograms of Phi(z0) tested "
             "for homogeneity (correlated shards are under-dispersed); event k of every shard correlated with event "
             "k of every other; one shard drawn twice. Flow level: the generated m_mumu histograms of consecutive "
             "shards of the validation sample, tested the same way. Template level: the torch generator run twice "
             "with the same seed, and as two shards merged, against one run.")
    c, fc = n.correlation, s["shard_correlation"]
    rows = [["noise vectors shared between shards (same key)", n.shared_between_shards, "0"],
            ["noise vectors shared between keys", n.shared_between_keys, "0"],
            ["repeated vectors within shards", n.duplicates_within, "0"],
            ["noise shard correlation rho (Phi(z0) histograms)", format_value(c.rho, c.rho_err), f"p = {_p(c.p_value)}"],
            ["event-paired noise correlation, max |z|", f"{n.paired_zmax:.2f}", f"p = {_p(n.paired_p_value)}"],
            ["same key, same noise (bit for bit)", n.reproducible.identical, ""],
            ["flow-level shard correlation rho (m_mumu)", format_value(fc.rho, fc.rho_err), f"p = {_p(fc.p_value)}"],
            ["same key, same generated events (bit for bit)", s["rerun_events"].identical, ""]]
    if "batch_size_dependence" in s:
        bd = s["batch_size_dependence"]
        rows.append(["information: another batch size, values that differ", f"{bd.n_different} of {bd.n_values}",
                     f"max |diff| {bd.max_abs_diff:.2g} (float32 BLAS blocking; backends use a fixed batch grid)"])
    if "template_rerun" in s:
        rows.append([f"same key, same templates ({s['template_events']} events)", s["template_rerun"].identical, ""])
        rows.append(["two shards merged = one run (bit for bit)", s["template_shards"].identical, ""])
    sec.table(["check", "result", "expected / p-value"], rows)
    sec.number("shard-to-shard correlation of m_mumu bins", fc.rho, fc.rho_err, note=f"p = {_p(fc.p_value)}",
               key="shard_rho")
    fig, data = matrix_figure(fc.matrix, title="residual correlation",
                              extra=f"m_mumu shards: expected {fc.expected_offdiag:.3f} ± {fc.offdiag_err:.3f} off-diagonal")
    sec.figure("streams_shard_matrix", fig, data, "Correlation of the standardised bin residuals of the generated "
               "m_mumu histograms between shards (independent shards: -1/(M-1) off the diagonal).")
    sec.verdict(s["passed"], "independent and reproducible" if s["passed"] else "a stream check failed")
    return sec


def build_report(res: Any, *, title: str = "dyroot validate", subtitle: str = "") -> Report:
    """The whole validation report (summary, inputs, then one section per part).

    Args:
        res: a :class:`~dyroot.validate.ValidationResult`.
        title: the page title.
        subtitle: e.g. the command line.

    Returns:
        A :class:`~dyroot.report.Report`; write it with :meth:`~dyroot.report.Report.write`.
    """
    from dataclasses import asdict

    meta = {"config": asdict(res.config), "timings_s": res.timings, "inputs": res.inputs}
    rep = Report(title, subtitle, meta=meta)
    rep.add(summary_section(res))
    rep.add(inputs_section(res))
    if res.fidelity:
        rep.add(fidelity_section(res))
    if res.amplification:
        rep.add(amplification_section(res))
    if res.spurious:
        rep.add(spurious_section(res))
    if res.memorisation:
        rep.add(memorisation_section(res))
    if res.streams:
        rep.add(streams_section(res))
    return rep
