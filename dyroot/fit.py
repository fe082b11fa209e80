r"""RooFit fits of the spurious-signal test: binned S+B models with bin integration, robust Minuit2.

Boundary module (RooFit; ROOT is imported inside functions). :class:`TemplateFit`
builds, for one histogram and one background function of :mod:`dyroot.functions`, the
extended binned model

.. math:: \nu_i = N_S\, \bar s_i + B\, h_i\, \bar f_i(\theta),

and fits it with Minuit2 (status, HESSE status and covariance quality checked, retries
from other starting points; a fit that still fails raises :class:`~dyroot.exceptions.FitError`
carrying its result, and is never used silently).

Warning:
    RooFit's default binned fit evaluates each pdf at the bin centre and normalises it
    by its integral over the range. At template scale both matter: the bin sum of a
    normalised pdf differs from 1 by ~1e-5..1e-4 and moves with the parameters, so the
    likelihood gets a spurious term :math:`N(1 - \sum_i p_i h_i)` that biases a fit to a
    1e9-event template by tenths of a standard deviation or more (stack-notes). Here:

    * every shape is averaged over each bin by the two-node Gauss-Legendre rule
      (:math:`\bar f_i = [f(c_i - \delta_i) + f(c_i + \delta_i)]/2`,
      :math:`\delta_i = h_i/(2\sqrt3)`, error :math:`h^4 f^{(4)}/4320`), written into
      the formula of a ``RooFormulaVar`` (the same formula string numpy evaluates);
    * the model is a ``RooRealSumPdf`` with the ``BinnedLikelihood`` attribute, so the
      likelihood is exactly Poisson in the bin expectations (no integral over the range
      enters); the signal is normalised to the sum of its bins (:func:`~dyroot.signal.dscb_bin_fractions`),
      so :math:`N_S` is the number of signal events in the binned range;
    * the likelihood is offset per bin (``Offset="bin"``; ``"initial"`` when a bin is empty,
      as RooFit's per-bin offset is then NaN) and Minuit2's function precision is set to
      ``FitOptions.precision``;
    * Minuit2's HESSE still scatters by up to ~10 % on these likelihoods (measured against
      the Fisher information: 0.91-1.00 for 1e6-1e9 events, depending on strategy and
      precision), so after a converged MIGRAD + HESSE (status and covariance quality
      checked) the errors are recomputed from a central-difference Hessian of the same
      RooFit likelihood with steps of half an error: equal to the Fisher information to
      1e-4 (``tests/test_fit.py``).

    ``tests/test_fit.py`` checks that a fit to an exact 1e9-event template of the true
    function finds zero signal within 2 % of its uncertainty.

The yields are internally scaled to parameters of order one: ``s`` (signal in units of
the formula estimate of its uncertainty) and ``beta`` (background,
:math:`B = B_0(1 + \beta/\sqrt{N_0})`).
"""

from __future__ import annotations

import math
import os
import pathlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .exceptions import ConfigError, FitError, OutputExistsError
from .functions import BackgroundFunction, gauss_legendre_nodes, initial_values, substitute
from .signal import DSCB, SignalModel, dscb_bin_fractions

__all__ = [
    "FitOptions",
    "FitResult",
    "TemplateFit",
    "WorkspaceCategory",
    "histogram_arrays",
    "write_workspace",
]


@dataclass(frozen=True)
class FitOptions:
    """How fits are run (every number a documented default).

    Args:
        backend: RooFit evaluation backend (``"cpu"``: vectorised; ``"legacy"`` also works).
        strategy: Minuit2 strategy of the first attempt (retries use 2).
        precision: Minuit2's relative precision of the (bin-offset) likelihood.
        tolerance: Minuit2 tolerance (EDM target ``0.002 * tolerance``).
        max_attempts: attempts per fit (start, strategy 2, least-squares start, jittered starts).
        min_cov_qual: smallest accepted covariance quality (3: full and accurate).
        jitter: size of the random restarts, in units of the parameter errors.
        seed: seed of the random restarts.
        bin_integration: average shapes over bins (two-node Gauss-Legendre); ``False``
            evaluates at bin centres (for comparisons only).
    """

    backend: str = "cpu"
    strategy: int = 1
    precision: float = 1e-10
    tolerance: float = 1.0
    max_attempts: int = 5
    min_cov_qual: int = 3
    jitter: float = 1.0
    seed: int = 1
    bin_integration: bool = True


@dataclass
class FitResult:
    """The numbers of one fit (pure Python, picklable).

    Attributes:
        ok: converged (migrad status 0, or 1 with EDM < 1e-3; HESSE status 0; covQual >= the
            minimum; finite errors).
        status, hesse_status, cov_qual, edm, nll: Minuit2's report of the last attempt.
        values, errors: parameter values and HESSE errors by name (shape parameters by
            their catalogue names, plus ``n_sig`` in events; ``values`` also has ``n_bkg``).
        attempts: attempts used.
        message: what went wrong, if anything.
    """

    ok: bool
    status: int
    hesse_status: int
    cov_qual: int
    edm: float
    nll: float
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    attempts: int = 1
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "hesse_status": self.hesse_status, "cov_qual": self.cov_qual,
                "edm": self.edm, "nll": self.nll, "values": self.values, "errors": self.errors,
                "attempts": self.attempts, "message": self.message}


def histogram_arrays(hist: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges, contents and sum of squared weights of a ``TH1`` or a 1-D ``RooDataHist`` (no flow bins).

    Raises:
        ConfigError: for an object that is neither, or a ``RooDataHist`` of several variables.
    """
    if hasattr(hist, "GetNbinsX"):
        n = hist.GetNbinsX()
        ax = hist.GetXaxis()
        edges = np.array([ax.GetBinLowEdge(i) for i in range(1, n + 2)], dtype=np.float64)
        counts = np.array([hist.GetBinContent(i) for i in range(1, n + 1)], dtype=np.float64)
        errs = np.array([hist.GetBinError(i) for i in range(1, n + 1)], dtype=np.float64)
        return edges, counts, errs**2
    if hasattr(hist, "weightSquared") and hasattr(hist, "get"):
        obs = hist.get()
        if obs.size() != 1:
            raise ConfigError(f"RooDataHist {hist.GetName()} has {obs.size()} variables; give a 1-D histogram")
        var = obs[0]
        b = var.getBinning()
        edges = np.array([b.binLow(i) for i in range(b.numBins())] + [b.binHigh(b.numBins() - 1)], dtype=np.float64)
        counts = np.array([hist.weight(i) for i in range(hist.numEntries())], dtype=np.float64)
        w2 = np.array([hist.weightSquared(i) for i in range(hist.numEntries())], dtype=np.float64)
        return edges, counts, w2
    raise ConfigError(f"expected a TH1 or a RooDataHist, got {type(hist).__name__}")


def _th1(ROOT: Any, name: str, edges: np.ndarray, values: np.ndarray, sumw2: np.ndarray | None = None) -> Any:
    h = ROOT.TH1D(name, name, len(edges) - 1, np.ascontiguousarray(edges, dtype=np.float64))
    h.SetDirectory(0)
    h.Sumw2()
    for i, v in enumerate(values):
        h.SetBinContent(i + 1, float(v))
        if sumw2 is not None:
            h.SetBinError(i + 1, math.sqrt(max(float(sumw2[i]), 0.0)))
    return h


def _quiet(ROOT: Any) -> None:
    ROOT.RooMsgService.instance().setGlobalKillBelow(ROOT.RooFit.WARNING)


class TemplateFit:
    r"""The binned S+B model of one histogram and one background function, with its fits.

    Args:
        edges: bin edges in GeV.
        counts: bin contents (the template scaled to the data luminosity, or as given).
        sumw2: sums of squared weights per bin.
        function: the background function.
        signal: the DSCB shape (change it with :meth:`set_signal`).
        core_nodes: the Drell-Yan core at the two Gauss-Legendre nodes of every bin
            (needed if ``function.uses_core``).
        options: fit options.
        tag: a name unique in the process (category), used for RooFit object names.

    Example:
        >>> shape = DSCB(124.9, 2.5, 1.5, 3.0, 1.6, 10.0)  # doctest: +SKIP
        >>> tf = TemplateFit(edges, counts, sumw2, get_function("Epoly3"), shape)  # doctest: +SKIP
        >>> b = tf.fit_background()  # doctest: +SKIP
        >>> r = tf.fit_signal(shape)  # doctest: +SKIP
        >>> r.values["n_sig"], r.errors["n_sig"], tf.asimov_delta_s(shape)  # doctest: +SKIP
    """

    def __init__(self, edges: np.ndarray, counts: np.ndarray, sumw2: np.ndarray, function: BackgroundFunction,
                 signal: DSCB, *, core_nodes: tuple[np.ndarray, np.ndarray] | None = None,
                 options: FitOptions = FitOptions(), tag: str = "t") -> None:
        from ._optional import import_root

        self.ROOT = ROOT = import_root()
        _quiet(ROOT)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.float64)
        self.sumw2 = np.asarray(sumw2, dtype=np.float64)
        nb = self.edges.size - 1
        if self.counts.shape != (nb,) or self.sumw2.shape != (nb,) or nb < 2 or np.any(np.diff(self.edges) <= 0):
            raise ConfigError(f"histogram arrays do not match: {nb} bins from the edges, {self.counts.size} contents, "
                              f"{self.sumw2.size} sumw2; edges must increase")
        if not np.all(np.isfinite(self.counts)) or self.counts.sum() <= 0:
            raise ConfigError("the template has non-finite contents or no events; check the input histogram")
        if function.uses_core and core_nodes is None:
            raise ConfigError(f"{function.name} multiplies the Drell-Yan core: pass core_nodes (dyroot.functions.dy_core)")
        self.function, self.options, self.tag = function, options, tag
        self.core_nodes = core_nodes
        self.widths = np.diff(self.edges)
        self.nodes = gauss_legendre_nodes(self.edges)
        self.lo, self.hi = float(self.edges[0]), float(self.edges[-1])
        self._rng = np.random.default_rng(options.seed)
        self._keep: list[Any] = []
        k = self._keep.append

        m = ROOT.RooRealVar(f"mll_{tag}", "m_{#mu#mu}", self.lo, self.hi, "GeV")
        m.setBinning(ROOT.RooBinning(nb, np.ascontiguousarray(self.edges)))
        self.m = m
        self.hdata = _th1(ROOT, f"h_{tag}", self.edges, self.counts, self.sumw2)
        self.data = ROOT.RooDataHist(f"data_{tag}", "", [m], self.hdata)
        delta = (self.widths / (2.0 * math.sqrt(3.0))) if options.bin_integration else np.zeros(nb)
        hist_funcs = {"bins": np.ones(nb), "delta": delta}
        if core_nodes is not None:
            hist_funcs["coreL"], hist_funcs["coreR"] = (core_nodes if options.bin_integration
                                                       else (self._core_centres(core_nodes),) * 2)
        self._hf = {}
        for name, vals in hist_funcs.items():
            h = _th1(ROOT, f"h{name}_{tag}", self.edges, np.asarray(vals, dtype=np.float64))
            dh = ROOT.RooDataHist(f"dh{name}_{tag}", "", [m], h)
            self._hf[name] = ROOT.RooHistFunc(f"{name}_{tag}", "", [m], dh, 0)
            k(h), k(dh)

        # ---- background: the formula averaged over each bin
        self.params = {p.name: ROOT.RooRealVar(f"{tag}_{p.name}", p.name, p.start, p.lo, p.hi) for p in function.parameters}
        for p in function.parameters:  # Minuit's first step; HESSE errors replace it after a fit
            self.params[p.name].setError(1e-3 * (p.hi - p.lo))
        n = function.n_params
        idx = {name: f"@{i + 1}" for i, name in enumerate(function.param_names)}
        args = [m, *self.params.values(), self._hf["delta"]]
        if function.uses_core:
            args += [self._hf["coreL"], self._hf["coreR"]]
        # divided by its value at the centre of the range (core -> 1): the yield coefficient is
        # then nearly independent of the shape parameters, which keeps HESSE well conditioned
        self.m_ref = 0.5 * (self.lo + self.hi)
        ref = substitute(function.expanded(self.lo, self.hi, mass=repr(self.m_ref)), {**idx, "core": "1.0"})
        halves = []
        for sign, core in (("-", f"@{n + 2}"), ("+", f"@{n + 3}")):
            text = function.expanded(self.lo, self.hi, mass=f"(@0{sign}@{n + 1})")
            halves.append(substitute(text, {**idx, "core": core}))
        self.bkg_func = ROOT.RooFormulaVar(f"bkgf_{tag}", function.name,
                                           f"0.5*(({halves[0]}) + ({halves[1]}))/({ref})", args)
        self.bkg_term = ROOT.RooProduct(f"bkg_{tag}", "", [self.bkg_func, self._hf["bins"]])

        # ---- signal: the DSCB averaged over each bin, normalised to its bin sum
        self.sig_par = {
            "mean": ROOT.RooRealVar(f"{tag}_sig_mean", "", signal.mean, self.lo - 100.0, self.hi + 100.0),
            "sigma": ROOT.RooRealVar(f"{tag}_sig_sigma", "", signal.sigma, 1e-3, 100.0),
            "alpha_lo": ROOT.RooRealVar(f"{tag}_sig_alo", "", signal.alpha_lo, 1e-3, 100.0),
            "n_lo": ROOT.RooRealVar(f"{tag}_sig_nlo", "", signal.n_lo, 1.0, 1e4),
            "alpha_hi": ROOT.RooRealVar(f"{tag}_sig_ahi", "", signal.alpha_hi, 1e-3, 100.0),
            "n_hi": ROOT.RooRealVar(f"{tag}_sig_nhi", "", signal.n_hi, 1.0, 1e4),
        }
        for v in self.sig_par.values():
            v.setConstant(True)
        self.inv_norm = ROOT.RooRealVar(f"{tag}_sig_invnorm", "", 1.0)
        self.inv_norm.setConstant(True)
        shifted = []
        for sign in ("-", "+"):
            mu = ROOT.RooFormulaVar(f"{tag}_sig_mean{'m' if sign == '-' else 'p'}", "", f"@0{'+' if sign == '-' else '-'}@1",
                                    [self.sig_par["mean"], self._hf["delta"]])
            # f(m - d; mu) = f(m; mu + d): the node below the centre moves the mean up
            cb = ROOT.RooCrystalBall(f"{tag}_sig_cb{'m' if sign == '-' else 'p'}", "", m, mu, self.sig_par["sigma"],
                                     self.sig_par["alpha_lo"], self.sig_par["n_lo"], self.sig_par["alpha_hi"],
                                     self.sig_par["n_hi"])
            k(mu), k(cb)
            shifted.append(cb)
        self.sig_term = ROOT.RooFormulaVar(f"sig_{tag}", "", "0.5*(@0+@1)*@2*@3",
                                           [shifted[0], shifted[1], self.inv_norm, self._hf["bins"]])

        # ---- yields, scaled to order-one fit parameters
        inf = ROOT.RooNumber.infinity()
        self.n0 = float(self.counts.sum())
        self.s = ROOT.RooRealVar(f"{tag}_s", "signal / delta_est", 0.0, -inf, inf)
        self.s.setError(1.0)
        self.beta = ROOT.RooRealVar(f"{tag}_beta", "background pull", 0.0, -inf, inf)
        self.beta.setError(1.0)
        self.s_scale = ROOT.RooRealVar(f"{tag}_s_scale", "", 1.0)
        self.b_scale = ROOT.RooRealVar(f"{tag}_b_scale", "", 1.0)
        self.b_unit = ROOT.RooRealVar(f"{tag}_b_unit", "", 1.0 / math.sqrt(max(self.n0, 1.0)))
        for v in (self.s_scale, self.b_scale, self.b_unit):
            v.setConstant(True)
        self.n_sig = ROOT.RooFormulaVar(f"nsig_{tag}", "", "@0*@1", [self.s, self.s_scale])
        self.b_coef = ROOT.RooFormulaVar(f"bcoef_{tag}", "", "@0*(1.0+@1*@2)", [self.b_scale, self.beta, self.b_unit])
        self.model = ROOT.RooRealSumPdf(f"model_{tag}", "", [self.sig_term, self.bkg_term], [self.n_sig, self.b_coef], True)
        self.model.setAttribute("BinnedLikelihood")

        self._s_scale_set = False
        self.start_values = initial_values(function, self.edges, self.counts, core_nodes=core_nodes)
        self.set_values(self.start_values)
        f0 = float(np.sum(self.widths * self.bkg_average(self.start_values)))
        self.b_scale.setVal(self.n0 / f0)
        self.set_signal(signal)
        # RooFit's per-bin offset (the saturated likelihood) is NaN when a bin is empty (0 log 0):
        # offset by the initial value then (slightly less precise at template scale)
        self._offset = "bin" if np.all(self.counts > 0) else "initial"
        self.nll = self.model.createNLL(self.data, EvalBackend=options.backend, Extended=True, Offset=self._offset)
        self.mini = self._minimizer(self.nll)
        self._asimov: tuple[Any, ...] | None = None  # (histogram, data, NLL, minimiser)

    # ------------------------------------------------------------------ helpers

    def _core_centres(self, core_nodes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return 0.5 * (np.asarray(core_nodes[0]) + np.asarray(core_nodes[1]))

    def _minimizer(self, nll: Any) -> Any:
        opts = self.ROOT.Math.MinimizerOptions
        previous = opts.DefaultPrecision()
        opts.SetDefaultPrecision(self.options.precision)  # read when the minimiser is built
        try:
            mini = self.ROOT.RooMinimizer(nll)
        finally:
            opts.SetDefaultPrecision(previous)
        mini.setPrintLevel(-1)
        mini.setPrintEvalErrors(-1)
        mini.setMinimizerType("Minuit2")
        mini.setEps(self.options.tolerance)
        return mini

    def bkg_average(self, values: Mapping[str, float]) -> np.ndarray:
        """The background function averaged over each bin and divided by its value at the
        centre of the range (core set to 1 there), as the model computes it."""
        ref = float(self.function.evaluate(self.m_ref, values, lo=self.lo, hi=self.hi, core=1.0))
        if self.options.bin_integration:
            return self.function.bin_average(self.edges, values, self.core_nodes) / ref
        core = None if self.core_nodes is None else self._core_centres(self.core_nodes)
        c = 0.5 * (self.edges[1:] + self.edges[:-1])
        return self.function.evaluate(c, values, lo=self.lo, hi=self.hi, core=core) / ref

    def set_values(self, values: Mapping[str, float]) -> None:
        """Set background shape parameters (clipped into their ranges)."""
        for name, v in values.items():
            p = self.params[name]
            p.setVal(float(np.clip(v, p.getMin(), p.getMax())))

    def set_signal(self, shape: DSCB) -> None:
        """Use the DSCB ``shape`` (e.g. at another m_H) for the following signal fits."""
        for key, var in self.sig_par.items():
            var.setVal(float(getattr(shape, key)))
        if self.options.bin_integration:
            lo, hi = self.nodes
            avg = 0.5 * (shape(lo) + shape(hi))
        else:
            avg = shape(0.5 * (self.edges[1:] + self.edges[:-1]))
        self.inv_norm.setVal(1.0 / float(np.sum(avg * self.widths)))
        self.signal_shape = shape
        frac = dscb_bin_fractions(shape, self.edges) if self.options.bin_integration else avg * self.widths / np.sum(avg * self.widths)
        self.signal_fractions = frac
        if not self._s_scale_set:  # fixed once: the likelihood's parametrisation must not jump
            est = float(np.sum(frac**2 / np.maximum(self.counts, 1e-9 * self.n0 / frac.size))) ** -0.5
            self.s_scale.setVal(est)
            self._s_scale_set = True

    @property
    def values(self) -> dict[str, float]:
        return {n: float(p.getVal()) for n, p in self.params.items()}

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """Expected signal and background per bin at the current parameters (numpy, as the model)."""
        bkg = float(self.b_coef.getVal()) * self.widths * self.bkg_average(self.values)
        sig = float(self.n_sig.getVal()) * self.signal_fractions
        return sig, bkg

    # ------------------------------------------------------------------ fitting

    def _result(self, status: int, hesse: int, fitres: Any, refined: bool) -> FitResult:
        vals, errs = {}, {}
        for n, p in self.params.items():
            vals[n], errs[n] = float(p.getVal()), float(p.getError())
        s_sig, b_pred = self.predictions()
        vals["n_sig"], errs["n_sig"] = float(self.n_sig.getVal()), float(self.s.getError() * self.s_scale.getVal())
        vals["n_bkg"] = float(b_pred.sum())  # its error is correlated with the shape: not reported
        cq = int(fitres.covQual()) if fitres else -1
        edm = float(fitres.edm()) if fitres else float("nan")
        finite = all(np.isfinite(v) for v in vals.values()) and all(np.isfinite(e) and e >= 0 for e in errs.values())
        # MIGRAD converged: status 0, or 1 (its own covariance forced positive definite) with the
        # EDM below Minuit2's target
        converged = status == 0 or (status == 1 and edm < 1e-3 * self.options.tolerance)
        hesse_ok = hesse == 0 and cq >= self.options.min_cov_qual
        ok = converged and finite and (hesse_ok or refined)
        if not ok:
            msg = f"migrad status {status}, hesse status {hesse}, covQual {cq}, edm {edm:.2g}" + ("" if finite else ", non-finite")
        elif not hesse_ok:
            msg = f"Minuit2 HESSE status {hesse} / covQual {cq}: errors from the finite-difference Hessian (positive definite)"
        else:
            msg = "" if refined else "errors from Minuit2's HESSE (the finite-difference Hessian was not positive definite)"
        return FitResult(ok, int(status), int(hesse), cq, edm, float(fitres.minNll()) if fitres else float("nan"),
                         vals, errs, 1, msg)

    def _refine_errors(self, nll: Any) -> bool:
        """Replace the HESSE errors of the floating parameters by those of a central-difference
        Hessian of ``nll`` with steps of half an error.

        Minuit2's HESSE (its small steps) scatters by up to ~10 % on these likelihoods
        (measured against the Fisher information); steps of half an error, where the Poisson
        likelihood is quadratic, agree with it to 0.3 %. Returns False, errors untouched, when
        that Hessian is not positive definite.
        """
        pars = [p for p in (*self.params.values(), self.beta, self.s) if not p.isConstant()]
        x0 = np.array([p.getVal() for p in pars])
        h = np.array([0.5 * p.getError() if p.getError() > 0 else 1e-3 for p in pars])
        for i, p in enumerate(pars):
            room = min(x0[i] - p.getMin(), p.getMax() - x0[i])
            if 0 < room < 2.0 * h[i]:
                h[i] = 0.45 * room

        def value(delta: np.ndarray) -> float:
            for p, v in zip(pars, x0 + delta):
                p.setVal(float(v))
            return float(nll.getVal())

        k = len(pars)
        eye = np.diag(h)
        f0 = value(np.zeros(k))
        fp = [value(eye[i]) for i in range(k)]
        fm = [value(-eye[i]) for i in range(k)]
        hess = np.empty((k, k))
        for i in range(k):
            hess[i, i] = (fp[i] - 2.0 * f0 + fm[i]) / h[i] ** 2
            for j in range(i):
                hess[i, j] = hess[j, i] = (value(eye[i] + eye[j]) - value(eye[i] - eye[j]) - value(eye[j] - eye[i])
                                           + value(-eye[i] - eye[j])) / (4.0 * h[i] * h[j])
        value(np.zeros(k))
        if not np.all(np.isfinite(hess)) or np.min(np.linalg.eigvalsh(hess)) <= 0:
            return False
        cov = np.linalg.inv(hess)
        for i, p in enumerate(pars):
            p.setError(float(np.sqrt(cov[i, i])))
        return True

    def _attempt(self, strategy: int) -> FitResult:
        self.mini.setStrategy(strategy)
        status = int(self.mini.migrad())
        hesse = int(self.mini.hesse()) if status in (0, 1) else -1
        fitres = self.mini.save()
        refined = status in (0, 1) and self._refine_errors(self.nll)
        return self._result(status, hesse, fitres, refined)

    def _fit(self, signal: bool, what: str) -> FitResult:
        floating = [*self.params.values(), self.beta] + ([self.s] if signal else [])
        self.s.setConstant(not signal)
        if not signal:
            self.s.setVal(0.0)
        here = {n: float(p.getVal()) for n, p in self.params.items()}
        plans: list[tuple[dict[str, float], int]] = [(here, self.options.strategy), (here, 2), (self.start_values, 2)]
        best: FitResult | None = None
        for attempt in range(self.options.max_attempts):
            if attempt < len(plans):
                start, strategy = plans[attempt]
                self.set_values(start)
                if attempt == 2:
                    self.beta.setVal(0.0)
                    self.s.setVal(0.0)
            else:  # jittered restart around the best point seen
                strategy = 2
                base = best.values if best is not None else here
                for p in floating:
                    name = next((n for n, q in self.params.items() if q is p), None)
                    centre = base.get(name, 0.0) if name else 0.0
                    err = p.getError() if p.getError() > 0 else 1.0
                    p.setVal(float(np.clip(centre + self.options.jitter * err * self._rng.normal(),
                                           p.getMin(), p.getMax())))
            res = self._attempt(strategy)
            res.attempts = attempt + 1
            if res.ok:
                return res
            if best is None or (np.isfinite(res.nll) and not res.nll > best.nll):
                best = res
        assert best is not None
        raise FitError(f"{what} of {self.function.name} ({self.tag}) failed after {self.options.max_attempts} "
                       f"attempts: {best.message}", best)

    def fit_background(self) -> FitResult:
        """Background-only fit (signal fixed to zero).

        Raises:
            FitError: if every attempt fails (``err.result`` holds the best one).
        """
        res = self._fit(False, "the background-only fit")
        self.background_result = res
        self._bkg_point = (self.values, float(self.beta.getVal()))
        self._asimov = None
        return res

    def fit_signal(self, shape: DSCB | None = None) -> FitResult:
        """S+B fit with the DSCB ``shape`` (default: the current one), started from the
        background-only fit; ``values["n_sig"]`` is the fitted signal in events.

        Raises:
            FitError: if every attempt fails.
        """
        if shape is not None:
            self.set_signal(shape)
        if hasattr(self, "_bkg_point"):
            self.set_values(self._bkg_point[0])
            self.beta.setVal(self._bkg_point[1])
        self.s.setVal(0.0)
        return self._fit(True, "the S+B fit")

    def asimov_delta_s(self, shape: DSCB | None = None) -> float:
        r"""Expected uncertainty :math:`\delta S` of the signal yield: HESSE at the minimum of the
        S+B likelihood of the Asimov dataset of the background-only fit (which is that fit's
        point with :math:`N_S = 0`).

        Raises:
            ConfigError: before :meth:`fit_background`.
            FitError: if HESSE fails.
        """
        if not hasattr(self, "_bkg_point"):
            raise ConfigError("asimov_delta_s needs the background-only fit first: call fit_background()")
        if shape is not None:
            self.set_signal(shape)
        self.set_values(self._bkg_point[0])
        self.beta.setVal(self._bkg_point[1])
        self.s.setConstant(False)  # RooMinimizer refuses parameters that become floating later
        if self._asimov is None:
            self.s.setVal(0.0)
            _, bkg = self.predictions()
            h = _th1(self.ROOT, f"hasimov_{self.tag}", self.edges, bkg, bkg)
            dh = self.ROOT.RooDataHist(f"asimov_{self.tag}", "", [self.m], h)
            nll = self.model.createNLL(dh, EvalBackend=self.options.backend, Extended=True,
                                       Offset="bin" if np.all(bkg > 0) else "initial")
            self._asimov = (h, dh, nll, self._minimizer(nll))
        mini = self._asimov[3]
        self.s.setConstant(False)
        self.s.setVal(0.0)
        self.s.setError(1.0)
        mini.setStrategy(self.options.strategy)
        ms = int(mini.migrad())  # RooMinimizer needs MIGRAD first; it starts at the minimum
        hs = int(mini.hesse()) if ms in (0, 1) else -1
        fr = mini.save()
        refined = ms in (0, 1) and self._refine_errors(self._asimov[2])
        sigma = float(self.s.getError() * self.s_scale.getVal())
        converged = ms == 0 or (ms == 1 and fr.edm() < 1e-3 * self.options.tolerance)
        hesse_ok = hs == 0 and fr.covQual() >= self.options.min_cov_qual
        if not (converged and (hesse_ok or refined) and np.isfinite(sigma) and sigma > 0):
            res = FitResult(False, ms, hs, int(fr.covQual()), float(fr.edm()), float(fr.minNll()),
                            {"n_sig": 0.0}, {"n_sig": sigma}, 1, "Asimov HESSE failed")
            raise FitError(f"the Asimov fit of {self.function.name} ({self.tag}) failed (migrad status {ms}, "
                           f"hesse status {hs}, covQual {fr.covQual()})", res)
        self.set_values(self._bkg_point[0])
        self.beta.setVal(self._bkg_point[1])
        return sigma


# ----------------------------------------------------------------------------------------------
# Workspace output


@dataclass
class WorkspaceCategory:
    """What the workspace stores for one category.

    Args:
        name: category name.
        edges, counts, sumw2: the template scaled to the data luminosity.
        function: the chosen background function; ``values`` its background-only fit.
        n_bkg: fitted background events in the range.
        core_grid: ``(masses, core)`` on a fine grid, if the function uses the core.
    """

    name: str
    edges: np.ndarray
    counts: np.ndarray
    sumw2: np.ndarray
    function: BackgroundFunction
    values: Mapping[str, float]
    n_bkg: float
    core_grid: tuple[np.ndarray, np.ndarray] | None = None


def _tmp_name(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_workspace(path: str | os.PathLike[str], categories: Sequence[WorkspaceCategory], signal: SignalModel, *,
                    mh: float = 125.0, json_path: str | os.PathLike[str] | None = None, force: bool = False,
                    summary_json: str | None = None) -> tuple[pathlib.Path, pathlib.Path | None]:
    r"""Write a ``RooWorkspace`` ``dyroot`` (and its HS3 JSON) ready for a combined fit.

    Per category ``<c>``: the observable ``mll_<c>`` (the template binning), the template
    scaled to the data luminosity ``data_<c>`` (``RooDataHist``), the chosen background
    ``bkg_<c>`` (``RooGenericPdf`` of the catalogue formula; the core as a ``RooHistFunc``
    ``core_<c>`` on a 0.01 GeV grid, linear interpolation), the signal ``sig_<c>``
    (``RooCrystalBall`` whose parameters are linear in the shared ``MH``) and the extended
    ``model_<c>`` = ``nsig_<c>`` sig + ``nbkg_<c>`` bkg. The summary JSON is stored as a
    ``TNamed`` ``dyroot_spurious`` beside the workspace.

    Args:
        path: output ROOT file.
        categories: one entry per category.
        signal: the signal model.
        mh: the value of ``MH`` (GeV).
        json_path: HS3 JSON output (``None``: none).
        force: overwrite existing outputs.
        summary_json: text stored as the ``TNamed``.

    Returns:
        The paths written.

    Raises:
        OutputExistsError: an output exists and ``force`` is false.
        FitError: RooFit refuses to write the HS3 JSON.
    """
    from ._optional import import_root

    ROOT = import_root()
    _quiet(ROOT)
    path = pathlib.Path(path)
    jpath = pathlib.Path(json_path) if json_path is not None else None
    for p in (path, jpath):
        if p is not None and p.exists() and not force:
            raise OutputExistsError(f"{p} exists; pass force=True (--force) to overwrite it")
    ws = ROOT.RooWorkspace("dyroot", "dyroot spurious-signal workspace")
    keep: list[Any] = []
    mh_var = ROOT.RooRealVar("MH", "m_{H}", mh, 110.0, 160.0, "GeV")
    mh_var.setConstant(True)
    for cat in categories:
        c = cat.name
        m = ROOT.RooRealVar(f"mll_{c}", "m_{#mu#mu}", float(cat.edges[0]), float(cat.edges[-1]), "GeV")
        m.setBinning(ROOT.RooBinning(len(cat.edges) - 1, np.ascontiguousarray(cat.edges, dtype=np.float64)))
        h = _th1(ROOT, f"hdata_{c}", cat.edges, cat.counts, cat.sumw2)
        data = ROOT.RooDataHist(f"data_{c}", f"template scaled to data, {c}", [m], h)
        fn = cat.function
        args = [m]
        names = {"m": m.GetName()}
        for p in fn.parameters:
            v = ROOT.RooRealVar(f"{c}_{p.name}", p.name, float(cat.values[p.name]), p.lo, p.hi)
            args.append(v)
            names[p.name] = v.GetName()
        if fn.uses_core:
            grid, core = cat.core_grid if cat.core_grid is not None else (None, None)
            if grid is None:
                raise ConfigError(f"{c}: {fn.name} needs the core grid to be written")
            mfine = ROOT.RooRealVar(m.GetName(), "", float(grid[0]), float(grid[-1]))
            mfine.setBins(len(grid) - 1)
            hc = _th1(ROOT, f"hcore_{c}", np.linspace(grid[0], grid[-1], len(grid)),
                      0.5 * (np.asarray(core)[1:] + np.asarray(core)[:-1]))
            dcore = ROOT.RooDataHist(f"dcore_{c}", "", [mfine], hc)
            hf = ROOT.RooHistFunc(f"core_{c}", "Drell-Yan core", [m], dcore, 1)
            args.append(hf)
            names["core"] = hf.GetName()
            keep += [mfine, hc, dcore, hf]
        expr = substitute(fn.expanded(float(cat.edges[0]), float(cat.edges[-1])), names)
        bkg = ROOT.RooGenericPdf(f"bkg_{c}", fn.name, expr, args)
        sig_args = {}
        p0, p1 = signal.at(c, mh), signal.at(c, mh + 1.0)
        for key in ("mean", "sigma", "alpha_lo", "n_lo", "alpha_hi", "n_hi"):
            a, b = float(getattr(p0, key)), float(getattr(p1, key))
            sig_args[key] = ROOT.RooFormulaVar(f"{c}_sig_{key}", key, f"{a!r} + {b - a!r}*(@0 - {mh!r})", [mh_var])
        sig = ROOT.RooCrystalBall(f"sig_{c}", "DSCB", m, sig_args["mean"], sig_args["sigma"], sig_args["alpha_lo"],
                                  sig_args["n_lo"], sig_args["alpha_hi"], sig_args["n_hi"])
        nsig = ROOT.RooRealVar(f"nsig_{c}", "signal events", 0.0, -1e9, 1e9)
        nbkg = ROOT.RooRealVar(f"nbkg_{c}", "background events", float(cat.n_bkg), 0.0, 10.0 * float(cat.n_bkg) + 10.0)
        model = ROOT.RooAddPdf(f"model_{c}", f"S+B, {c}", [sig, bkg], [nsig, nbkg])
        ws.Import(model, ROOT.RooFit.RecycleConflictNodes(), ROOT.RooFit.Silence())
        ws.Import(data, ROOT.RooFit.Silence())
        keep += [m, h, data, bkg, sig, nsig, nbkg, model, *args, *sig_args.values()]
    tmp = _tmp_name(path)
    try:
        f = ROOT.TFile(str(tmp), "RECREATE")
        if f.IsZombie():
            raise OutputExistsError(f"cannot write {path}; check the directory")
        ws.Write()
        if summary_json is not None:
            ROOT.TNamed("dyroot_spurious", summary_json).Write()
        f.Close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if jpath is not None:
        jtmp = _tmp_name(jpath).with_suffix(".json")
        try:
            tool = ROOT.RooJSONFactoryWSTool(ws)
            if not tool.exportJSON(str(jtmp)):
                raise FitError(f"RooJSONFactoryWSTool could not export {jpath}")
            os.replace(jtmp, jpath)
        finally:
            if jtmp.exists():
                jtmp.unlink()
    return path, jpath
