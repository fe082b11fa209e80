r"""The spurious-signal scan: every category x background function x Higgs mass, in parallel.

Orchestration over :mod:`dyroot.fit` (RooFit, in worker processes) and
:mod:`dyroot.spurious` (the criteria). For each category and candidate function:

1. a background-only binned fit to the template scaled to the data luminosity, and the
   :math:`\chi^2` p-value with the template's own statistical errors;
2. for each :math:`m_H` (default 120-130 GeV in 0.5 GeV steps) an extended S+B fit with
   the category's DSCB at :math:`m_H`: :math:`\hat N_S`, its HESSE error
   :math:`\sigma_H` (data-like, the template playing the data);
3. :math:`\delta S`: HESSE of the S+B likelihood of the Asimov dataset of step 1;
4. :math:`\Delta_{MC} = \sqrt{k}\,\sigma_H` with :math:`k = \sum w^2/\sum w` the mean
   weight of the scaled template: the uncertainty :math:`\hat N_S` would have from the
   template's own statistics (exact for a template of raw counts times one scale factor,
   the dyroot case: the likelihood of the scaled template is the raw one times the
   scale, so its errors scale as :math:`\sqrt{scale}`, the template's as :math:`scale`);
5. the criteria and the choice of :mod:`dyroot.spurious`.

Units run as ``(category, function)`` tasks on a pool of ``spawn`` processes (each imports
ROOT itself); ``workers=1`` runs in this process.

Example:
    >>> from dyroot.scan import spurious_signal  # doctest: +SKIP
    >>> result = spurious_signal("templates.root", lumi_fb=139.0, workers=2)  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
    >>> result.write("spurious_out")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pathlib
import shutil
import sys
import time
import uuid
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .exceptions import ConfigError, OutputExistsError
from .fit import FitOptions
from .functions import BackgroundFunction, DYCore, dy_core, gauss_legendre_nodes, resolve_functions
from .signal import DSCB, SignalModel
from .spurious import Criteria, FunctionScan, MassPoint, Verdict, chi2_test, choose, evaluate, format_table
from .warnings import InputWarning

__all__ = [
    "DEFAULT_MASSES",
    "CategoryInput",
    "ScanConfig",
    "ScanResult",
    "template_inputs",
    "histogram_input",
    "run_scan",
    "spurious_signal",
    "load_signal",
]

#: Higgs masses of the scan: 120-130 GeV in 0.5 GeV steps (21 points).
DEFAULT_MASSES: tuple[float, ...] = tuple(float(x) for x in np.round(np.arange(120.0, 130.0001, 0.5), 6))


@dataclass
class CategoryInput:
    """One category's histogram at the data luminosity.

    Args:
        name: category name.
        edges: bin edges (GeV).
        counts, sumw2: contents and squared-weight sums, already scaled to the data luminosity.
        scale: the factor that was applied to the stored histogram.
    """

    name: str
    edges: np.ndarray
    counts: np.ndarray
    sumw2: np.ndarray
    scale: float = 1.0

    @property
    def mean_weight(self) -> float:
        """:math:`k = \\sum w^2 / \\sum w` (the scale itself for raw counts)."""
        return float(self.sumw2.sum() / self.counts.sum())


@dataclass
class ScanConfig:
    """Settings of a scan (all documented defaults).

    Args:
        lumi_fb: data luminosity in fb^-1 (S_expected and the template scale).
        masses: Higgs masses in GeV.
        functions: candidate background functions (default: the whole default catalogue).
        criteria: the thresholds.
        fit: fit options.
        workers: processes (1: this process).
        core: Drell-Yan core settings; the resolution of a category is its signal
            :math:`\\sigma_{CB}/m_H` at ``core_mh``.
        core_mh: Higgs mass (GeV) at which the resolution is taken.
        chi2_min_expected: least expected effective count per group of the chi2 test.
    """

    lumi_fb: float = 139.0
    masses: tuple[float, ...] = DEFAULT_MASSES
    functions: list[BackgroundFunction] = field(default_factory=lambda: resolve_functions(None))
    criteria: Criteria = field(default_factory=Criteria)
    fit: FitOptions = field(default_factory=FitOptions)
    workers: int = 2
    core: DYCore = field(default_factory=DYCore)
    core_mh: float = 125.0
    chi2_min_expected: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return {"lumi_fb": self.lumi_fb, "masses": list(self.masses), "functions": [f.name for f in self.functions],
                "criteria": self.criteria.to_dict(), "fit": dict(self.fit.__dict__), "workers": self.workers,
                "core": self.core.to_dict(), "core_mh": self.core_mh, "chi2_min_expected": self.chi2_min_expected}


# ----------------------------------------------------------------------------------------------
# Inputs


def _data_scale(prov: Mapping[str, Any], norm: Mapping[str, Any], hist: str, lumi_fb: float) -> float:
    mode = norm.get("mode", "counts")
    hint = "pass template_lumi_fb= / scale= (CLI: --template-lumi or --template-scale)"
    if mode == "xsec":
        if not norm.get("lumi_fb"):
            raise ConfigError(f"templates normalised to a cross-section without a luminosity; {hint}")
        return lumi_fb / float(norm["lumi_fb"])
    sigma, n_gen = prov.get("sigma_pb"), prov.get("n_events")
    if not sigma or not n_gen:
        raise ConfigError(f"the templates' provenance lacks sigma_pb or n_events, so the scale to {lumi_fb} fb^-1 "
                          f"is unknown; {hint}")
    raw_to_data = lumi_fb * 1000.0 * float(sigma) / float(n_gen)
    if mode == "counts":
        return raw_to_data
    scale = norm.get("scale", 1.0)
    s_h = float(scale.get(hist, 1.0)) if isinstance(scale, Mapping) else float(scale)
    return raw_to_data / s_h


def template_inputs(source: Any, lumi_fb: float, *, categories: Sequence[str] | None = None,
                    template_lumi_fb: float | None = None, scale: float | None = None) -> list[CategoryInput]:
    """The category histograms of a templates file, scaled to the data luminosity.

    The scale is ``scale`` if given, else ``lumi_fb / template_lumi_fb``, else from the
    provenance: ``L * 1000 * sigma_pb / n_events`` for raw counts (COMMON.md section 5),
    adapted to the ``xsec``/``unit``/``sidebands`` normalisations.

    Args:
        source: a templates ROOT file or a :class:`dyroot.templates.Templates`.
        lumi_fb: data luminosity in fb^-1.
        categories: a subset of category names (default: all).
        template_lumi_fb: the luminosity the histograms correspond to.
        scale: an explicit factor.

    Raises:
        ConfigError: when the scale cannot be determined, or a category is unknown.
    """
    from .templates import Templates

    t = source if isinstance(source, Templates) else Templates.read(source)
    b = t.binning
    names = list(t.categories) if categories is None else list(categories)
    unknown = [c for c in names if c not in t.categories]
    if unknown:
        raise ConfigError(f"categories {unknown} are not in the templates (they have {list(t.categories)})")
    out = []
    for c in names:
        h = f"{b.variable}_{c}"
        if scale is not None:
            s = float(scale)
        elif template_lumi_fb is not None:
            s = lumi_fb / float(template_lumi_fb)
        else:
            s = _data_scale(t.provenance, t.normalisation, h, lumi_fb)
        counts, sumw2 = t.counts[h][1:-1] * s, t.sumw2[h][1:-1] * s * s
        out.append(CategoryInput(c, b.edges(), counts, sumw2, s))
    return out


def histogram_input(hist: Any, *, name: str | None = None, scale: float = 1.0) -> CategoryInput:
    """A category from a ``TH1`` or a 1-D ``RooDataHist`` (contents times ``scale``)."""
    from .fit import histogram_arrays

    edges, counts, sumw2 = histogram_arrays(hist)
    return CategoryInput(name or str(hist.GetName()), edges, counts * scale, sumw2 * scale * scale, scale)


# ----------------------------------------------------------------------------------------------
# Workers


@dataclass
class _Task:
    cat: CategoryInput
    function: BackgroundFunction
    shapes: list[tuple[float, DSCB, float | None]]
    core_nodes: tuple[np.ndarray, np.ndarray] | None
    options: FitOptions
    chi2_min_expected: float
    tag: str


def _worker_init() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ._optional import import_root

    import_root()


def _run_task(task: _Task) -> FunctionScan:
    from .fit import TemplateFit

    t0 = time.process_time()
    cat, fn = task.cat, task.function
    out = FunctionScan(cat.name, fn.name, fn.n_params, family=fn.family)
    try:
        tf = TemplateFit(cat.edges, cat.counts, cat.sumw2, fn, task.shapes[0][1], core_nodes=task.core_nodes,
                         options=task.options, tag=task.tag)
        b = tf.fit_background()
    except Exception as err:  # noqa: BLE001  reported as a failed fit, never used; the scan goes on
        out.background_ok, out.message = False, f"{type(err).__name__}: {err}"
        out.points = [MassPoint(mh, ok=False, message="no background-only fit", s_expected=se) for mh, _, se in task.shapes]
        out.cpu_seconds = time.process_time() - t0
        return out
    _, bkg = tf.predictions()
    out.values, out.errors = dict(b.values), dict(b.errors)
    out.n_bkg, out.prediction = float(bkg.sum()), [float(x) for x in bkg]
    try:
        out.chi2, out.ndf, out.chi2_pvalue = chi2_test(cat.counts, cat.sumw2, bkg, fn.n_params + 1,
                                                       min_expected=task.chi2_min_expected)
    except ConfigError as err:
        out.message = str(err)
    k = math.sqrt(cat.mean_weight)
    for mh, shape, s_exp in task.shapes:
        pt = MassPoint(mh, s_expected=s_exp)
        try:
            r = tf.fit_signal(shape)
            pt.n_sig, pt.n_sig_error = r.values["n_sig"], r.errors["n_sig"]
            pt.delta_mc = k * pt.n_sig_error
            pt.delta_s = tf.asimov_delta_s(shape)
        except Exception as err:  # noqa: BLE001  (as above)
            pt.ok, pt.message = False, f"{type(err).__name__}: {err}"
        out.points.append(pt)
    out.cpu_seconds = time.process_time() - t0
    return out


def _spawn_context() -> Any:
    ctx = multiprocessing.get_context("spawn")
    exe = pathlib.Path(sys.executable).name
    if not exe.startswith("python"):  # e.g. inside root.exe (TPython): spawn a real interpreter
        for cand in (pathlib.Path(sys.prefix) / "bin" / "python3", shutil.which("python3")):
            if cand and pathlib.Path(cand).exists():
                ctx.set_executable(str(cand))
                break
    return ctx


# ----------------------------------------------------------------------------------------------
# The scan


@dataclass
class ScanResult:
    """Everything a scan produced (pure numbers; JSON via :meth:`to_dict`)."""

    scans: list[FunctionScan]
    verdicts: list[Verdict]
    chosen: dict[str, str | None]
    inputs: list[CategoryInput]
    signal: SignalModel
    config: ScanConfig
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process + the worker processes (their start-up included)

    def scan(self, category: str, function: str) -> FunctionScan:
        for s in self.scans:
            if s.category == category and s.function == function:
                return s
        raise ConfigError(f"no scan of {function} in {category}")

    def table(self) -> str:
        """The readable pass/fail table."""
        return format_table(self.verdicts, self.chosen)

    def to_dict(self) -> dict[str, Any]:
        from ._version import __version__

        cats = {}
        for c in self.inputs:
            v = [x for x in self.verdicts if x.category == c.name]
            cats[c.name] = {
                "chosen": self.chosen.get(c.name), "scale": c.scale, "n_events": float(c.counts.sum()),
                "mean_weight": c.mean_weight,
                "verdicts": [x.to_dict() for x in v],
                # the per-bin background predictions stay out of the JSON (the workspace has the model)
                "scans": [{k: x for k, x in s.to_dict().items() if k != "prediction"}
                          for s in self.scans if s.category == c.name],
            }
        return {"format": "dyroot-spurious-summary", "format_version": 1, "dyroot": __version__,
                "config": self.config.to_dict(), "signal": self.signal.to_dict(), "categories": cats,
                "timing": {"wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu_seconds,
                           "workers": self.config.workers}}

    def write(self, outdir: str | os.PathLike[str], *, force: bool = False, workspace: bool = True,
              plots: bool = True) -> dict[str, pathlib.Path]:
        """Write ``summary.json``, ``summary.txt``, ``workspace.root`` + ``workspace.json`` (HS3)
        and ``plots/`` into ``outdir``; every file atomically.

        Raises:
            OutputExistsError: an output exists and ``force`` is false.
        """
        out = pathlib.Path(outdir)
        targets = {"summary_json": out / "summary.json", "summary_txt": out / "summary.txt"}
        if workspace:
            targets.update(workspace=out / "workspace.root", workspace_json=out / "workspace.json")
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing and not force:
            raise OutputExistsError(f"{', '.join(existing)} exist; pass force=True (--force) or choose another --output")
        from ._jsonutil import to_jsonable
        from .bundle import write_json

        out.mkdir(parents=True, exist_ok=True)
        record = to_jsonable(self.to_dict())
        write_json(targets["summary_json"], record)
        summary = json.dumps(record, sort_keys=True)
        _atomic_text(targets["summary_txt"], self.table() + "\n")
        if workspace:
            self._write_workspace(targets["workspace"], targets["workspace_json"], summary)
        if plots:
            from .spurious_plots import plot_all

            targets.update(plot_all(self, out / "plots", force=force))
        return targets

    def _write_workspace(self, path: pathlib.Path, jpath: pathlib.Path, summary: str) -> None:
        from .fit import WorkspaceCategory, write_workspace

        cats = []
        fns = {f.name: f for f in self.config.functions}
        for c in self.inputs:
            name = self.chosen.get(c.name)
            if name is None:
                continue
            s = self.scan(c.name, name)
            fn = fns[name]
            grid = None
            if fn.uses_core:
                m = np.round(np.arange(c.edges[0], c.edges[-1] + 0.005, 0.01), 6)
                grid = (m, dy_core(m, self.signal.relative_resolution(c.name, self.config.core_mh), self.config.core))
            cats.append(WorkspaceCategory(c.name, c.edges, c.counts, c.sumw2, fn, s.values, s.n_bkg, grid))
        if not cats:
            warnings.warn("no category has a passing function: the workspace is not written", InputWarning, stacklevel=3)
            return
        write_workspace(path, cats, self.signal, json_path=jpath, force=True, summary_json=summary)


def _atomic_text(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def run_scan(inputs: Sequence[CategoryInput], signal: SignalModel, config: ScanConfig = ScanConfig(), *,
             progress: Callable[[int, int, FunctionScan], None] | None = None) -> ScanResult:
    """Run the scan over ``inputs`` (categories) x ``config.functions`` x ``config.masses``.

    Args:
        inputs: category histograms at the data luminosity.
        signal: the signal model (its categories must include every input's).
        config: the settings.
        progress: called as ``progress(done, total, scan)`` after each task.

    Returns:
        The fitted numbers, the verdicts and the chosen function per category.

    Raises:
        ConfigError: for an empty configuration or a category without a signal shape.
    """
    if not inputs or not config.functions or not config.masses:
        raise ConfigError("nothing to scan: give at least one category, one function and one mass")
    missing = [c.name for c in inputs if c.name not in signal.points]
    if missing:
        raise ConfigError(f"no signal shape for categories {missing}; the signal model has {signal.categories}")
    import resource

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tasks = []
    for c in inputs:
        if not np.allclose(c.sumw2[c.counts > 0] / c.counts[c.counts > 0], c.mean_weight, rtol=1e-6):
            warnings.warn(f"{c.name}: the template's weights are not uniform; Delta_MC uses the mean weight "
                          f"{c.mean_weight:.4g} (approximate)", InputWarning, stacklevel=2)
        shapes = []
        for mh in config.masses:
            xs = signal.expected_sigma_pb(c.name, mh)
            shapes.append((float(mh), signal.at(c.name, mh), None if xs is None else xs * config.lumi_fb * 1000.0))
        nodes = None
        if any(f.uses_core for f in config.functions):
            r = signal.relative_resolution(c.name, config.core_mh)
            lo, hi = gauss_legendre_nodes(c.edges)
            nodes = (dy_core(lo, r, config.core), dy_core(hi, r, config.core))
        for f in config.functions:
            tasks.append(_Task(c, f, shapes, nodes if f.uses_core else None, config.fit, config.chi2_min_expected,
                               f"{c.name}_{f.name}"))
    tasks.sort(key=lambda t: -t.function.n_params)  # long tasks first: better balance
    scans: list[FunctionScan] = []
    if config.workers <= 1:
        for t in tasks:
            scans.append(_run_task(t))
            if progress:
                progress(len(scans), len(tasks), scans[-1])
    else:
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=_spawn_context(), initializer=_worker_init) as ex:
            for s in ex.map(_run_task, tasks):
                scans.append(s)
                if progress:
                    progress(len(scans), len(tasks), s)
    order = {(c.name, f.name): i for i, (c, f) in enumerate((c, f) for c in inputs for f in config.functions)}
    scans.sort(key=lambda s: order[(s.category, s.function)])
    verdicts = [evaluate(s, config.criteria) for s in scans]
    chosen = {}
    for c in inputs:
        best = choose([v for v in verdicts if v.category == c.name])
        chosen[c.name] = best.function if best else None
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, reaped: start-up included
    cpu = time.process_time() - t_cpu + (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    return ScanResult(scans, verdicts, chosen, list(inputs), signal, config, time.perf_counter() - t_wall, cpu)


def spurious_signal(template: Any, *, signal: SignalModel | Sequence[str] | str | None = None, lumi_fb: float = 139.0,
                    scale: float | None = None, template_lumi_fb: float | None = None,
                    categories: Sequence[str] | None = None, name: str | None = None,
                    functions: Iterable[str | BackgroundFunction] | str | None = None,
                    masses: Sequence[float] = DEFAULT_MASSES, criteria: Criteria = Criteria(),
                    fit: FitOptions = FitOptions(), workers: int = 1,
                    progress: Callable[[int, int, FunctionScan], None] | None = None) -> ScanResult:
    """The Python API: run the spurious-signal test on templates or on one histogram.

    Args:
        template: a templates file path, a :class:`~dyroot.templates.Templates`, a ``TH1``,
            a 1-D ``RooDataHist``, or ``{category: TH1}``.
        signal: a :class:`~dyroot.signal.SignalModel`, ggH sample paths (fitted), a JSON
            configuration path, or ``None`` (dyroot's default DSCB shapes).
        lumi_fb: data luminosity in fb^-1.
        scale: explicit factor to the data luminosity (for histograms default 1: used as is).
        template_lumi_fb: the luminosity the templates correspond to.
        categories: subset of categories (templates files).
        name: category name of a single histogram (default: the histogram's name).
        functions: names (``"Epoly*"`` selects a family), entries, or ``None`` (all defaults).
        masses: Higgs masses in GeV.
        criteria, fit: thresholds and fit options.
        workers: processes.
        progress: called after each (category, function).

    Returns:
        The :class:`ScanResult` (``.table()``, ``.chosen``, ``.write(outdir)``).
    """
    if hasattr(template, "GetNbinsX") or hasattr(template, "weightSquared"):
        inputs = [histogram_input(template, name=name, scale=1.0 if scale is None else scale)]
    elif isinstance(template, Mapping):
        inputs = [histogram_input(h, name=k, scale=1.0 if scale is None else scale) for k, h in template.items()]
    else:
        inputs = template_inputs(template, lumi_fb, categories=categories, template_lumi_fb=template_lumi_fb, scale=scale)
    cats = [c.name for c in inputs]
    if signal is None:
        warnings.warn("no signal given: using dyroot's default DSCB shapes (physics.md section 4); pass a ggH "
                      "sample (dyroot simulate --process ggH) or a JSON configuration", InputWarning, stacklevel=2)
        model = SignalModel.default(cats)
    elif isinstance(signal, SignalModel):
        model = signal
    else:
        model = load_signal(signal, cats)
    config = ScanConfig(lumi_fb=lumi_fb, masses=tuple(float(m) for m in masses), functions=resolve_functions(functions),
                        criteria=criteria, fit=fit, workers=workers)
    return run_scan(inputs, model, config, progress=progress)


def load_signal(signal: Sequence[str] | str, categories: Sequence[str]) -> SignalModel:
    """A signal model from a JSON configuration or ggH sample files (fitted per category).

    Raises:
        ConfigError: when the sample's categories differ from the templates'.
    """
    from .signal import fit_signal_samples

    paths = [signal] if isinstance(signal, (str, os.PathLike)) else list(signal)
    if len(paths) == 1 and str(paths[0]).endswith(".json"):
        return SignalModel.read_json(paths[0])
    return fit_signal_samples([str(p) for p in paths], None)
