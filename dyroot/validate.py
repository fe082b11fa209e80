r"""``dyroot validate``: are the generated events statistically sound?

Orchestration (no ROOT here: events are read through :mod:`dyroot.io`, templates
through :mod:`dyroot.templates`, the statistics are the pure modules
:mod:`dyroot.twosample`, :mod:`dyroot.amplification`, :mod:`dyroot.memorisation`,
:mod:`dyroot.streams_check`). :func:`run_validation` takes a model bundle, held-out
reference events (never trained on), and optionally the training events (default:
the file recorded in the bundle's provenance), an ensemble of bundles and a
templates file, generates what it needs with the bundle's torch sampler on dyroot's
counter-based streams (the events of a seed are the same events every backend
generates), and computes:

1. **Fidelity**: per variable and category, the normalised histograms of generated
   and reference events after the analysis selection, :math:`\chi^2`/ndf with pulls,
   KS; the category fractions; a classifier two-sample test (AUC ± DeLong).
   Verdict: no test below ``alpha`` after a Bonferroni correction for their number.
2. **Amplification** of the :math:`m_{\mu\mu}` template in the fit range, per
   category: the quantile-MSE method with the held-out events as truth (measurable up
   to roughly their size), and, with an ensemble, the variance fit
   :math:`a/N + c` giving :math:`N_\mathrm{eff}` and
   :math:`G = N_\mathrm{eff}/N_\mathrm{train}`, in ``region_width`` bins and also in
   the quantiles of the first method. :math:`n_\mathrm{equiv}` depends on the
   resolution at which the shape is probed (finer regions see a smooth model error
   spread over more bins), so the two are compared on the same regions.
3. **Spurious signal with its uncertainty split** (:mod:`dyroot.validate_spurious`):
   the template-statistics part, the model part (ensemble spread), next to the
   :math:`S_\mathrm{spur}` of the training-size sample alone.
4. **Memorisation**: nearest-training distances, generated vs held-out, and duplicates.
5. **Streams**: the noise streams (shared vectors, correlation, reproducibility), the
   shard-to-shard correlation of the generated :math:`m_{\mu\mu}` histograms, and the
   template path (same seed twice, two shards merged vs one run: bit for bit).

The report is written by :func:`dyroot.validate_report.build_report`.

Example:
    >>> cfg = ValidationConfig(n_generate=100_000)
    >>> cfg.n_generate, cfg.alpha
    (100000, 0.001)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._jsonutil import to_jsonable
from .exceptions import ConfigError, InputError
from .features import FLOW_FEATURES, CategoryScheme, Selection
from .validate_inputs import (
    bundle_scheme,
    bundle_selection,
    generate_events,
    load_ensemble_members,
    load_training_events,
    read_sample,
)

__all__ = [
    "ValidationConfig",
    "ValidationResult",
    "fidelity_binning",
    "run_validation",
]

#: Variables compared in the fidelity section (the flow's and both muons').
DEFAULT_VARIABLES = FLOW_FEATURES + ("mu1_pt", "mu2_pt", "mu1_eta", "mu2_eta")


@dataclass(frozen=True)
class ValidationConfig:
    r"""The settings of :func:`run_validation` (every number a documented default).

    Args:
        n_generate: events generated (before cuts) for fidelity, amplification,
            memorisation and the shard check; the template-path checks use a tenth.
        seed: the stream seed of the generated events (ensemble member ``k`` uses
            ``seed + 1 + k``: distinct keys, independent sampling noise).
        variables: the variables compared in the fidelity section.
        alpha: family-wise significance level of the pass/fail verdicts.
        classifier: run the classifier two-sample test.
        classifier_epochs: its training epochs.
        classifier_max_events: at most this many events per sample in it.
        n_quantiles: :math:`N_q` of the quantile-MSE method (reduced when the held-out
            category has fewer than 50 events per quantile).
        region_width: width in GeV of the regions of the ensemble-variance method.
        ensemble_events: events generated (before cuts) per ensemble member.
        memorisation_max_events: at most this many generated / held-out events in the
            nearest-neighbour test.
        stream_shards: shards of the shard-correlation checks.
        stream_shard_events: events per shard of the noise-level stream check.
        streams: run the stream checks.
        spurious: run the spurious-signal uncertainty split (needs RooFit).
        lumi_fb: the luminosity in fb^-1 the spurious-signal test scales templates to.
        spurious_functions: candidate background functions scanned on the nominal
            template (names or families of :mod:`dyroot.functions`); the chosen one per
            category is then fitted to the ensemble's and the training sample's templates.
        spurious_masses: Higgs masses of the scan, GeV (default 120-130 GeV in 0.5 GeV steps).
        spurious_categories: restrict the split to these categories (``None``: all).
        spurious_workers: processes of the RooFit scan.
        template_events: events (before cuts) of the nominal template generated for the
            spurious-signal split when no templates file is given (default ``n_generate``).
        device: torch device of the generation.
        batch_size: events per generation batch.
    """

    n_generate: int = 200_000
    seed: int = 1
    variables: tuple[str, ...] = DEFAULT_VARIABLES
    alpha: float = 1e-3
    classifier: bool = True
    classifier_epochs: int = 20
    classifier_max_events: int = 100_000
    n_quantiles: int = 25
    region_width: float = 2.0
    ensemble_events: int = 200_000
    memorisation_max_events: int = 50_000
    stream_shards: int = 8
    stream_shard_events: int = 20_000
    streams: bool = True
    spurious: bool = True
    lumi_fb: float = 140.0
    spurious_functions: tuple[str, ...] = ("Epoly2", "Epoly3", "Bernstein3", "Power1", "CoreEpoly1")
    spurious_masses: tuple[float, ...] = tuple(120.0 + 0.5 * i for i in range(21))
    spurious_categories: tuple[str, ...] | None = None
    spurious_workers: int = 1
    template_events: int | None = None
    device: str = "cpu"
    batch_size: int = 65_536

    def check(self) -> None:
        """Refuse invalid settings, listing every problem.

        Raises:
            ConfigError: with every problem found.
        """
        problems = []
        if self.n_generate < 1000:
            problems.append(f"n_generate = {self.n_generate}: generate at least 1000 events")
        if not 0 < self.alpha < 1:
            problems.append(f"alpha = {self.alpha} must lie in (0, 1)")
        if self.n_quantiles < 2:
            problems.append(f"n_quantiles = {self.n_quantiles} must be at least 2")
        if self.stream_shards < 2:
            problems.append(f"stream_shards = {self.stream_shards} must be at least 2")
        if self.region_width <= 0:
            problems.append(f"region_width = {self.region_width} GeV must be positive")
        unknown = [v for v in self.variables if v not in DEFAULT_VARIABLES + ("phill",)]
        if unknown:
            problems.append(f"unknown variables {unknown}; choose among {list(DEFAULT_VARIABLES)}")
        if problems:
            raise ConfigError(problems)


@dataclass
class ValidationResult:
    """Everything :func:`run_validation` measured (each part a dict, JSON-ready via :meth:`to_dict`).

    Attributes:
        inputs: sizes, paths, hashes, the selection and categories.
        fidelity: per-variable/category comparisons, category fractions, classifier.
        amplification: per category, the quantile-MSE and ensemble results.
        spurious: the spurious-signal uncertainty split (or why it was skipped).
        memorisation: the nearest-neighbour test (or why it was skipped).
        streams: the stream, shard and template-path checks.
        timings: seconds per part.
        notes: what was skipped or approximated, in words.
    """

    config: ValidationConfig
    inputs: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)
    amplification: dict[str, Any] = field(default_factory=dict)
    spurious: dict[str, Any] = field(default_factory=dict)
    memorisation: dict[str, Any] = field(default_factory=dict)
    streams: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def verdicts(self) -> dict[str, bool | None]:
        """Pass (True), fail (False) or no verdict (None) per part."""
        mem = self.memorisation.get("result")
        return {
            "fidelity": self.fidelity.get("passed"),
            "memorisation": None if mem is None else not mem.memorised,
            "streams": self.streams.get("passed"),
            "amplification": None,
            "spurious": None,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (result objects through their ``to_dict``)."""
        def conv(x: Any) -> Any:
            if hasattr(x, "to_dict") and not isinstance(x, type):
                return x.to_dict()
            if isinstance(x, dict):
                return {k: conv(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [conv(v) for v in x]
            return x

        return to_jsonable({"config": asdict(self.config), "inputs": conv(self.inputs), "fidelity": conv(self.fidelity),
                            "amplification": conv(self.amplification), "spurious": conv(self.spurious),
                            "memorisation": conv(self.memorisation), "streams": conv(self.streams),
                            "timings": self.timings, "notes": self.notes, "verdicts": self.verdicts()})


# ---------------------------------------------------------------------------------------------- fidelity


def fidelity_binning(var: str, ref: np.ndarray, selection: Selection, *, category: bool = False) -> np.ndarray:
    """Bin edges for the comparison of one variable (values outside are folded into the edge bins).

    m_mumu: 1 GeV bins over the selection's mass range; pT: from the cut to the
    reference's 99.5 % quantile; angles and rapidities over their natural ranges.
    Categories get coarser bins (25) than the inclusive sample (40).

    Example:
        >>> fidelity_binning("mll", np.array([120.0]), Selection())[[0, -1]].tolist()
        [110.0, 160.0]
    """
    nb = 25 if category else 40
    r = np.asarray(ref, dtype=np.float64)
    if var == "mll":
        lo, hi = selection.mll_range or (float(np.quantile(r, 0.005)), float(np.quantile(r, 0.995)))
        return np.linspace(lo, hi, max(int(round(hi - lo)), 2) + 1)
    if var in ("costheta",):
        return np.linspace(-1.0, 1.0, nb + 1)
    if var in ("phi_cs", "phill", "mu1_phi", "mu2_phi"):
        return np.linspace(-np.pi, np.pi, nb + 1)
    if var.endswith("_eta"):
        return np.linspace(-selection.max_abs_eta, selection.max_abs_eta, nb + 1)
    if var == "yll":
        y = float(np.ceil(10 * np.quantile(np.abs(r), 0.995)) / 10) if r.size else 2.5
        return np.linspace(-y, y, nb + 1)
    lo = {"mu1_pt": selection.lead_pt, "mu2_pt": selection.sublead_pt}.get(var, 0.0)
    hi = float(np.quantile(r, 0.995)) if r.size else lo + 100.0
    hi = lo + max(5.0 * np.ceil((hi - lo) / 5.0), 5.0)
    return np.linspace(lo, hi, nb + 1)


def _hist(x: np.ndarray, w: np.ndarray | None, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xc = np.clip(x, edges[0], np.nextafter(edges[-1], -np.inf))
    c = np.histogram(xc, edges, weights=w)[0].astype(np.float64)
    s = np.histogram(xc, edges, weights=None if w is None else w * w)[0].astype(np.float64)
    return c, s


def _fidelity(gen: dict[str, np.ndarray], ref: dict[str, np.ndarray], scheme: CategoryScheme, sel: Selection,
              cfg: ValidationConfig, out: dict[str, Any], notes: list[str]) -> None:
    from .twosample import binned_chi2, classifier_two_sample, ks_two_sample

    regions = [("inclusive", None)] + [(name, i) for i, name in enumerate(scheme.names)]
    comparisons = []
    skipped: dict[str, tuple[int, int]] = {}
    for var in cfg.variables:
        for rname, idx in regions:
            mg = np.ones(len(gen["mll"]), bool) if idx is None else gen["category"] == idx
            mr = np.ones(len(ref["mll"]), bool) if idx is None else ref["category"] == idx
            if mg.sum() < 20 or mr.sum() < 20:
                skipped[rname] = (int(mg.sum()), int(mr.sum()))
                continue
            edges = fidelity_binning(var, ref[var][mr], sel, category=idx is not None)
            cg, sg = _hist(gen[var][mg], None, edges)
            cr, sr = _hist(ref[var][mr], ref["weight"][mr], edges)
            chi = binned_chi2(cg, cr, sg, sr)
            ks = ks_two_sample(gen[var][mg], ref[var][mr], None, ref["weight"][mr])
            comparisons.append({"variable": var, "category": rname, "edges": edges, "counts_gen": cg, "sumw2_gen": sg,
                                "counts_ref": cr, "sumw2_ref": sr, "n_gen": int(mg.sum()), "n_ref": int(mr.sum()),
                                "chi2": chi, "ks": ks})
    out["comparisons"] = comparisons
    for rname, (ng, nr) in skipped.items():
        notes.append(f"fidelity: {rname} not compared ({ng} generated, {nr} reference events; at least 20 each needed)")
    k = len(scheme.names)
    cg = np.bincount(gen["category"][gen["category"] >= 0], minlength=k).astype(np.float64)
    wr = ref["weight"]
    okr = ref["category"] >= 0
    cr = np.bincount(ref["category"][okr], weights=wr[okr], minlength=k)
    sr = np.bincount(ref["category"][okr], weights=wr[okr] ** 2, minlength=k)
    out["category_fractions"] = {"names": scheme.names, "chi2": binned_chi2(cg, cr, None, sr),
                                 "n_gen": cg, "sumw_ref": cr, "sumw2_ref": sr}
    n_tests = 2 * len(comparisons) + 1
    clf = None
    if cfg.classifier:
        cols = [c for c in FLOW_FEATURES if c in gen]
        xg = np.column_stack([np.log(np.maximum(gen[c], 1e-3)) if c == "ptll" else gen[c] for c in cols])
        xr = np.column_stack([np.log(np.maximum(ref[c], 1e-3)) if c == "ptll" else ref[c] for c in cols])
        if min(len(xg), len(xr)) >= 200:
            clf = classifier_two_sample(xg, xr, reference_weights=wr, features=[("log_" + c if c == "ptll" else c)
                                                                                  for c in cols],
                                        epochs=cfg.classifier_epochs, max_events=cfg.classifier_max_events,
                                        seed=cfg.seed)
            n_tests += 1
        else:
            notes.append("fidelity: classifier test skipped (fewer than 200 selected events in a sample)")
    out["classifier"] = clf
    threshold = cfg.alpha / n_tests
    failing = [f"{c['variable']} ({c['category']}) chi2" for c in comparisons if c["chi2"].p_value < threshold]
    failing += [f"{c['variable']} ({c['category']}) KS" for c in comparisons if c["ks"].p_value < threshold]
    if out["category_fractions"]["chi2"].p_value < threshold:
        failing.append("category fractions chi2")
    if clf is not None and clf.p_value < threshold:
        failing.append("classifier AUC")
    out.update({"n_tests": n_tests, "threshold": threshold, "failing": failing, "passed": not failing})


# ---------------------------------------------------------------------------------------------- amplification


def _amplification(gen: dict[str, np.ndarray], ref: dict[str, np.ndarray], train: dict[str, np.ndarray] | None,
                   members: list[dict[str, np.ndarray]] | None, mode: str | None, scheme: CategoryScheme,
                   sel: Selection, cfg: ValidationConfig, out: dict[str, Any], notes: list[str]) -> None:
    from .amplification import ensemble_amplification, quantile_amplification, quantile_edges, watts_crow_bound
    from .twosample import kish_size

    lo, hi = sel.mll_range or (110.0, 160.0)
    regions = [("inclusive", None)] + [(name, i) for i, name in enumerate(scheme.names)]
    per: dict[str, Any] = {}
    for rname, idx in regions:
        entry: dict[str, Any] = {}

        def pick(ev: dict[str, np.ndarray]) -> np.ndarray:
            m = (ev["mll"] >= lo) & (ev["mll"] < hi)
            return m if idx is None else m & (ev["category"] == idx)

        mr = pick(ref)
        n_train = None
        if train is not None:
            mt = pick(train)
            n_train = kish_size(train["weight"][mt]) if "weight" in train else float(mt.sum())
            entry["n_train"] = n_train
            entry["watts_crow"] = watts_crow_bound(n_train)
        n_truth = kish_size(ref["weight"][mr])
        entry["n_truth"] = n_truth
        g = gen["mll"][pick(gen)]
        entry["n_gen"] = int(g.size)
        nq = int(min(cfg.n_quantiles, n_truth // 50))
        q_edges = None
        if n_train and nq >= 5 and g.size >= 100:
            q_edges = quantile_edges(ref["mll"][mr], n_quantiles=nq, weights=ref["weight"][mr])
            entry["quantile"] = quantile_amplification([g], q_edges, n_train=n_train, n_truth=n_truth)
        elif n_train:
            notes.append(f"amplification: quantile method skipped in {rname} ({n_truth:.0f} held-out events: "
                         "fewer than 5 quantiles of 50)")
        xs = [m["mll"][pick(m)] for m in members] if members else None
        if xs and n_train:
            n_member = _member_events(n_train, len(xs), mode)
            if min(x.size for x in xs) >= _MIN_MEMBER_EVENTS:
                edges = np.arange(lo, hi + 0.5 * cfg.region_width, cfg.region_width)
                entry["ensemble"] = ensemble_amplification(xs, edges, n_train=n_member)
                entry["ensemble_mode"] = mode
                if q_edges is not None:  # the same regions as the quantile method, to compare like with like
                    entry["ensemble_on_quantiles"] = ensemble_amplification(xs, q_edges, n_train=n_member)
            else:
                notes.append(f"amplification: ensemble method skipped in {rname} (fewer than {_MIN_MEMBER_EVENTS} "
                             "events per member)")
        per[rname] = entry
        if idx is None:
            out["resolution_scan"] = _resolution_scan(g, ref["mll"][mr], ref["weight"][mr], n_train, n_truth, xs,
                                                      mode, lo, hi)
    out["per_category"] = per
    out["mll_range"] = [lo, hi]


#: Fewest selected events per ensemble member for the ensemble method.
_MIN_MEMBER_EVENTS = 200


def _member_events(n_train: float, k: int, mode: str | None) -> float:
    """Training events of one ensemble member: a share for disjoint subsets, all for bootstrap replicas."""
    return n_train / k if mode == "disjoint" else n_train


def _resolution_scan(g: np.ndarray, ref_mll: np.ndarray, ref_w: np.ndarray, n_train: float | None, n_truth: float,
                     xs: list[np.ndarray] | None, mode: str | None, lo: float, hi: float) -> list[dict[str, Any]]:
    """G against the resolution at which the m_mumu shape is probed (inclusive): a smooth model error
    spread over more regions costs less per region, so n_equiv grows with the number of regions."""
    from .amplification import ensemble_amplification, quantile_amplification, quantile_edges

    rows: list[dict[str, Any]] = []
    if not n_train:
        return rows
    ensemble = bool(xs) and min(x.size for x in xs) >= _MIN_MEMBER_EVENTS
    n_member = _member_events(n_train, len(xs), mode) if ensemble else None
    for nq in (10, 25, 50, 100):
        if n_truth // 50 < nq:
            break
        e = quantile_edges(ref_mll, n_quantiles=nq, weights=ref_w)
        row: dict[str, Any] = {"regions": f"{nq} quantiles", "n_regions": nq,
                               "quantile": quantile_amplification([g], e, n_train=n_train, n_truth=n_truth,
                                                                  n_gen=[len(g)])}
        if ensemble:
            row["ensemble"] = ensemble_amplification(xs, e, n_train=n_member)
        rows.append(row)
    if ensemble:
        for w in (1.0, 2.5, 5.0, 10.0):
            e = np.arange(lo, hi + 0.5 * w, w)
            rows.append({"regions": f"{w:g} GeV bins", "n_regions": len(e) - 1,
                         "ensemble": ensemble_amplification(xs, e, n_train=n_member)})
    return rows


# ---------------------------------------------------------------------------------------------- memorisation


def _memorisation(gen: dict[str, np.ndarray], ref: dict[str, np.ndarray], train: dict[str, np.ndarray],
                  cfg: ValidationConfig, out: dict[str, Any]) -> None:
    from .memorisation import memorisation_test, standardise

    cols = list(FLOW_FEATURES)
    rng = np.random.default_rng(cfg.seed)

    def mat(ev: dict[str, np.ndarray], cap: int | None) -> np.ndarray:
        x = np.column_stack([ev[c] for c in cols])
        if cap is not None and len(x) > cap:
            x = x[np.sort(rng.choice(len(x), cap, replace=False))]
        return x

    raw = (mat(gen, cfg.memorisation_max_events), mat(train, None), mat(ref, cfg.memorisation_max_events))
    t, g, h = standardise(raw[1], raw[0], raw[2], log_columns=[cols.index("ptll")])
    out["result"] = memorisation_test(g, t, h, alpha=cfg.alpha, seed=cfg.seed, raw=raw)
    out["features"] = ["mll", "log ptll", "yll", "costheta", "phi_cs"]


# ---------------------------------------------------------------------------------------------- streams


def _streams(bundle: Any, gen_all: dict[str, np.ndarray], sel: Selection, cfg: ValidationConfig,
             out: dict[str, Any], notes: list[str]) -> None:
    from .generate import generate_templates
    from .streams_check import bitwise_equal, shard_correlation, stream_checks
    from .templates import Templates

    out["noise"] = stream_checks(cfg.seed, cfg.seed + 1, n_shards=cfg.stream_shards,
                                 shard_size=cfg.stream_shard_events, alpha=cfg.alpha)
    # Flow level: the generated sample cut into consecutive shards of global event indices.
    n = cfg.n_generate
    m = cfg.stream_shards
    size = n // m
    lo, hi = sel.mll_range or (110.0, 160.0)
    edges = np.arange(lo, hi + 0.5, 1.0)
    keep = sel.mask(gen_all)
    shards = np.stack([np.histogram(gen_all["mll"][keep & (gen_all["event_index"] // size == k)], edges)[0]
                       for k in range(m)])
    out["shard_histograms"] = {"edges": edges, "counts": shards}
    out["shard_correlation"] = shard_correlation(shards)
    # The same key and the same batch grid must give the same events bit for bit: redo the first batch.
    nb = min(n, cfg.batch_size)
    again = generate_events(bundle, nb, cfg.seed, batch_size=cfg.batch_size, device=cfg.device)
    out["rerun_events"] = bitwise_equal({c: gen_all[c][:nb] for c in FLOW_FEATURES}, {c: again[c] for c in FLOW_FEATURES})
    # Information: float32 matrix products may depend on the batch size (BLAS blocking), which is why
    # every backend generates on a fixed global batch grid. Count how many values move.
    other = generate_events(bundle, min(nb, 4096), cfg.seed, batch_size=max(1, min(nb, 4096) // 3), device=cfg.device)
    out["batch_size_dependence"] = bitwise_equal({c: gen_all[c][: len(other["mll"])] for c in FLOW_FEATURES},
                                                 {c: other[c] for c in FLOW_FEATURES})
    # Template path: the same seed twice, and two shards merged against one run.
    nt = max(2 * 4096, (n // 10) // 8192 * 8192)
    half = nt // 2
    kw = {"backend": "torch", "device": cfg.device, "progress": False, "batch_size": half}
    try:
        one = generate_templates(bundle, nt, cfg.seed, **kw)
        two = generate_templates(bundle, nt, cfg.seed, **kw)
        parts = Templates.merge([generate_templates(bundle, half, cfg.seed, first_event=0, **kw),
                                 generate_templates(bundle, half, cfg.seed, first_event=half, **kw)])
        out["template_rerun"] = bitwise_equal(one.counts, two.counts)
        out["template_shards"] = bitwise_equal(one.counts, parts.counts)
        out["template_events"] = nt
    except Exception as err:  # noqa: BLE001 - the template path is reported, not fatal
        notes.append(f"streams: template-path check skipped ({type(err).__name__}: {err})")
    checks = [out["noise"].passed, out["shard_correlation"].consistent_with_zero(cfg.alpha),
              out["rerun_events"].identical]
    checks += [out[k].identical for k in ("template_rerun", "template_shards") if k in out]
    out["passed"] = all(checks)


# ---------------------------------------------------------------------------------------------- driver


def run_validation(
    bundle: Any,
    reference: Any,
    *,
    training: Any = None,
    ensemble: Any = None,
    templates: Any = None,
    config: ValidationConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> ValidationResult:
    """Validate a model bundle's generated events (see the module docstring).

    Args:
        bundle: the bundle directory, or a loaded bundle.
        reference: held-out reference events (a ROOT file path, a glob, or an event
            dict as :func:`dyroot.io.read_events` returns), never trained on.
        training: the training events (path or dict); default the file in the
            bundle's provenance. Without them, G and memorisation are skipped.
        ensemble: an ensemble directory (``dyroot train --ensemble K``) or a list of
            loaded bundles, for the ensemble-variance amplification and the model
            part of the spurious-signal uncertainty.
        templates: a templates file of this bundle (``dyroot generate``), for the
            spurious-signal split at the template's own size.
        config: the settings.
        log: called with one line per stage (progress).

    Returns:
        A :class:`ValidationResult`.

    Raises:
        ConfigError: invalid settings.
        InputError: the reference events are the training events.
        BundleError, MissingInputError, ...: unusable inputs.
    """
    from .generate import resolve_bundle

    cfg = config or ValidationConfig()
    cfg.check()
    say = log or (lambda s: None)
    b = resolve_bundle(bundle)
    scheme, sel = bundle_scheme(b), bundle_selection(b)
    res = ValidationResult(config=cfg)
    t0 = time.perf_counter()

    say("reading the reference and training events")
    ref_all, ref_rec = read_sample(reference, scheme)
    train, train_rec = load_training_events(b, training)
    if "sha256" in ref_rec:
        prov_sha = []
        if getattr(b, "path", None) is not None and (Path(b.path) / "provenance.json").is_file():
            prov_sha = (json.loads((Path(b.path) / "provenance.json").read_text()).get("source") or {}).get("sha256") or []
        if ref_rec["sha256"] in list(prov_sha) or ref_rec.get("sha256") == train_rec.get("sha256"):
            msg = (f"the reference file {ref_rec['source']} is the file the model was trained on; validation needs "
                   "held-out events (e.g. `dyroot simulate` with another --seed)")
            raise InputError(msg)
    ref = {k: v[sel.mask(ref_all)] for k, v in ref_all.items()}
    if len(ref["mll"]) < 50:
        msg = (f"only {len(ref['mll'])} reference events pass the analysis selection; validation needs at least 50 "
               "(use a larger held-out sample)")
        raise InputError(msg)
    train_sel = None if train is None else {k: v[sel.mask(train)] for k, v in train.items()}
    if train is None:
        res.notes.append(f"training events: {train_rec.get('skipped')}")
    res.inputs = {"bundle": str(getattr(b, "path", "")), "bundle_hash": getattr(b, "hash", None),
                  "reference": ref_rec, "n_reference_selected": int(len(ref["mll"])), "training": train_rec,
                  "n_training_selected": None if train_sel is None else int(len(train_sel["mll"])),
                  "selection": sel.to_dict(), "categories": scheme.names, "sigma_pb": b.config.get("sigma_pb")}
    res.timings["read"] = time.perf_counter() - t0

    say(f"generating {cfg.n_generate} events (seed {cfg.seed})")
    t = time.perf_counter()
    gen_all = generate_events(b, cfg.n_generate, cfg.seed, batch_size=cfg.batch_size, device=cfg.device)
    gen = {k: v[sel.mask(gen_all)] for k, v in gen_all.items()}
    res.inputs.update({"n_generated": cfg.n_generate, "n_generated_selected": int(len(gen["mll"])), "seed": cfg.seed})
    res.timings["generate"] = time.perf_counter() - t
    if len(gen["mll"]) < 50:
        msg = (f"only {len(gen['mll'])} of {cfg.n_generate} generated events pass the analysis selection; "
               "generate more (--events) or check the bundle")
        raise InputError(msg)

    say("fidelity: histograms, chi2, KS" + (", classifier" if cfg.classifier else ""))
    t = time.perf_counter()
    _fidelity(gen, ref, scheme, sel, cfg, res.fidelity, res.notes)
    res.timings["fidelity"] = time.perf_counter() - t

    members, mode, member_bundles = None, None, []
    if ensemble is not None:
        say("ensemble: generating with every member")
        t = time.perf_counter()
        member_bundles, mode = load_ensemble_members(ensemble)
        members = [generate_events(mb, cfg.ensemble_events, cfg.seed + 1 + k, batch_size=cfg.batch_size,
                                   device=cfg.device, selection=sel) for k, mb in enumerate(member_bundles)]
        res.inputs.update({"ensemble_members": len(member_bundles), "ensemble_mode": mode,
                           "ensemble_events": cfg.ensemble_events})
        res.timings["ensemble_generate"] = time.perf_counter() - t

    say("amplification")
    t = time.perf_counter()
    _amplification(gen, ref, train_sel, members, mode, scheme, sel, cfg, res.amplification, res.notes)
    res.timings["amplification"] = time.perf_counter() - t

    if train_sel is not None and len(train_sel["mll"]) >= 20:
        say("memorisation: nearest-neighbour distances")
        t = time.perf_counter()
        _memorisation(gen, ref, train_sel, cfg, res.memorisation)
        res.timings["memorisation"] = time.perf_counter() - t
    else:
        res.memorisation["skipped"] = "no training events (pass --training)"

    if cfg.streams:
        say("streams: noise, shards, template path")
        t = time.perf_counter()
        _streams(b, gen_all, sel, cfg, res.streams, res.notes)
        res.timings["streams"] = time.perf_counter() - t

    if cfg.spurious:
        say("spurious signal: uncertainty split")
        t = time.perf_counter()
        from .validate_spurious import spurious_split

        spurious_split(b, member_bundles, templates, train_sel, ref, scheme, sel, cfg, res.spurious, res.notes,
                       member_events=members)
        res.timings["spurious"] = time.perf_counter() - t
    res.timings["total"] = time.perf_counter() - t0
    return res
