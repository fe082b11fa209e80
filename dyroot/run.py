r"""``dyroot run``: every stage from one configuration, reusing the finished ones.

Orchestration. The stages, each writing below ``[run] output``::

    sample     reference events (Pythia 8, or the user's ntuples), split into
               training and held-out events              sample/{training,heldout}.npz
    signal     gg->H->mumu samples, a DSCB fitted per category  signal/signal.json
    train      the flow (and the ensemble)                model/, ensemble/
    generate   the templates (SOFIE in RDataFrame...)     templates.root
    spurious   the spurious-signal scan                   spurious/
    validate   fidelity, amplification, memorisation...   validation/
    report     one page joining them                      report/index.html

Each stage records in ``.dyroot/stages/<stage>.json`` a key (the hash of the part
of the configuration it reads and of the keys of the stages it reads from), its
outputs, its duration and a summary. A stage whose key is unchanged and whose
outputs exist is reused; changing, say, ``[generate] events`` reruns ``generate``
and what follows it, never the training.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .exceptions import ConfigError
from .features import DEFAULT_CATEGORIES, Binning, CategoryScheme, Selection

__all__ = ["STAGES", "StageRecord", "RunResult", "run_pipeline", "selection_of", "categories_of"]

#: The stages in order, each with the configuration sections it reads and the stages it follows.
STAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sample": (("input", "simulate", "categories"), ()),
    "signal": (("signal", "selection", "categories"), ()),
    "train": (("model", "selection", "categories"), ("sample",)),
    "generate": (("generate", "selection"), ("train",)),
    "validate": (("validate", "spurious"), ("train", "generate", "signal")),
    "spurious": (("spurious",), ("generate", "signal", "validate")),
    "report": ((), ("sample", "signal", "train", "generate", "spurious", "validate")),
}


@dataclass
class StageRecord:
    """What a stage did: its key, outputs (paths relative to the run folder), time, summary."""

    name: str
    key: str
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "outputs": self.outputs, "seconds": self.seconds,
                "summary": self.summary}


@dataclass
class RunResult:
    """The records of every stage of a run, and where its report is."""

    output: Path
    stages: dict[str, StageRecord]

    @property
    def report(self) -> Path:
        return self.output / self.stages["report"].outputs["html"]


def selection_of(cfg: Mapping[str, Any]) -> Selection:
    """The analysis :class:`~dyroot.features.Selection` of a configuration."""
    s = cfg["selection"]
    return Selection(s["lead_pt"], s["sublead_pt"], s["max_abs_eta"], True, tuple(s["mll_range"]))


def categories_of(cfg: Mapping[str, Any]) -> CategoryScheme:
    """The :class:`~dyroot.features.CategoryScheme` of a configuration."""
    c = cfg["categories"]
    return DEFAULT_CATEGORIES if c["scheme"] == "default" else CategoryScheme.from_list(c["custom"])


def _workers(cfg: Mapping[str, Any]) -> int:
    n = int(cfg["run"]["workers"])
    return n if n > 0 else max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _key(cfg: Mapping[str, Any], name: str, records: Mapping[str, StageRecord]) -> str:
    sections, deps = STAGES[name]
    payload = {"stage": name, "seed": cfg["run"]["seed"], "config": {s: cfg[s] for s in sections},
               "after": {d: records[d].key for d in deps}}
    if name == "sample":  # the input files' identity (size and time, cheap) is part of the key
        from .io import expand_sources

        files = expand_sources(cfg["input"]["files"]) if cfg["input"]["files"] else []
        payload["files"] = [(f, os.path.getsize(f), int(os.path.getmtime(f))) for f in files if os.path.exists(f)]
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# The stages: each takes (cfg, out, records, log) and returns (outputs, summary)


def _save_npz(path: Path, events: Mapping[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **events)
    os.replace(tmp, path)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _stage_sample(cfg: Mapping[str, Any], out: Path, records: Mapping[str, StageRecord],
                  log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    from .io import read_events, read_provenance
    from .simulate import preset_config, simulate

    inp, sim = cfg["input"], cfg["simulate"]
    folder = out / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    if inp["files"]:
        sources: Any = inp["files"]
        summary["source"] = "user files"
    else:
        path = folder / "reference.root"
        overrides: dict[str, Any] = {"sqrt_s": sim["sqrt_s"]}
        if sim["mass_window"]:
            overrides["mass_window"] = tuple(sim["mass_window"])
        log(f"simulating {sim['events']:,} Drell-Yan events with Pythia 8 ({sim['preset']} preset)")
        res = simulate(path, sim["events"], preset_config(sim["preset"], categories=categories_of(cfg), **overrides),
                       seed=cfg["run"]["seed"], jobs=_workers(cfg), force=True, progress=True)
        summary.update(source="simulated", simulate_seconds=res.seconds, generated_per_second=res.generated_per_second,
                       sigma_pb=res.sigma_pb)
        sources = str(path)
    from .io import EventMapping

    mapping = EventMapping.from_user(inp["format"])
    if inp["mapping"]:  # the user's names override the preset's
        mapping = EventMapping(mapping.kind, {**mapping.columns, **inp["mapping"]}, tree=mapping.tree,
                               weight=mapping.weight, units=mapping.units)
    kwargs: dict[str, Any] = {"mapping": mapping, "nonfinite": inp["nonfinite"], "categories": categories_of(cfg)}
    for name in ("tree", "units", "weight", "category", "selection"):
        if inp[name]:
            kwargs[name] = inp[name]
    events = read_events(sources, **kwargs)
    from .plots import plot_mll_per_category

    plot_mll_per_category(events, folder / "mll_per_category.png", force=True)
    n = len(events["weight"])
    rng = np.random.default_rng([cfg["run"]["seed"], 0x5A3])
    heldout = rng.random(n) < inp["heldout_fraction"]
    _save_npz(folder / "training.npz", {k: v[~heldout] for k, v in events.items()})
    _save_npz(folder / "heldout.npz", {k: v[heldout] for k, v in events.items()})
    sigma = float(events["weight"].sum())
    if not inp["files"]:
        sigma = float(read_provenance(sources).get("sigma_selected_pb", sigma))
    summary.update(n_events=n, n_training=int((~heldout).sum()), n_heldout=int(heldout.sum()), sigma_pb=sigma,
                   weight_sum=float(events["weight"].sum()))
    log(f"{n:,} events: {summary['n_training']:,} for training, {summary['n_heldout']:,} held out")
    return {"training": "sample/training.npz", "heldout": "sample/heldout.npz",
            "plot": "sample/mll_per_category.png"}, summary


def _stage_signal(cfg: Mapping[str, Any], out: Path, records: Mapping[str, StageRecord],
                  log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    from .bundle import write_json
    from .signal import fit_signal_samples
    from .simulate import preset_config, simulate

    sig = cfg["signal"]
    folder = out / "signal"
    folder.mkdir(parents=True, exist_ok=True)
    scheme = categories_of(cfg)
    sel = selection_of(cfg)
    if sig["source"] == "simulate":
        samples = {}
        for mh in sig["mh"]:
            path = folder / f"ggH_mh{mh:g}.root"
            log(f"simulating {sig['events']:,} gg->H->mumu events at m_H = {mh:g} GeV")
            conf = preset_config("analysis", process="ggH", mh=mh, categories=scheme,
                                 selection=Selection(sel.lead_pt, sel.sublead_pt, sel.max_abs_eta, True, None))
            simulate(path, sig["events"], conf, seed=cfg["run"]["seed"] + int(round(10 * mh)), jobs=_workers(cfg),
                     force=True, progress=True)
            samples[float(mh)] = str(path)
    else:
        samples = {float("nan"): sig["source"]}
    log("fitting a double-sided Crystal Ball per category")
    model = fit_signal_samples(list(samples.values()), scheme.names, fit_range=sel.mll_range or (110.0, 160.0))
    write_json(folder / "signal.json", model.to_dict())
    summary = {c: {"sigma_gev": model.at(c, 125.0).sigma, "mean_gev": model.at(c, 125.0).mean,
                   "sigma_pb": model.expected_sigma_pb(c, 125.0)} for c in model.categories}
    return {"model": "signal/signal.json"}, {"categories": summary, "samples": list(samples.values())}


def _stage_train(cfg: Mapping[str, Any], out: Path, records: Mapping[str, StageRecord],
                 log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    from .export import export_bundle
    from .flows import FlowConfig
    from .train import TrainConfig, train_bundle, train_ensemble

    m = cfg["model"]
    events = _load_npz(out / records["sample"].outputs["training"])
    flow = FlowConfig(architecture=m["architecture"], layers=m["layers"], hidden=m["hidden"], bins=m["bins"])
    tc = TrainConfig(epochs=m["epochs"], batch_size=m["batch_size"], lr=m["lr"], patience=m["patience"],
                     seed=cfg["run"]["seed"], device=m["device"])
    common: dict[str, Any] = dict(selection=selection_of(cfg), categories=categories_of(cfg),
                                  context=m["context"] or None, sigma_pb=records["sample"].summary["sigma_pb"])
    log(f"training the flow on {len(events['weight']):,} events ({m['architecture']}, {m['layers']} layers)")
    t0 = time.perf_counter()
    bundle = train_bundle(events, out / "model", flow=flow, train=tc, force=True, progress=True,
                          source={"stage": "dyroot run", "training_events": str(out / "sample" / "training.npz")},
                          **common)
    export_bundle(bundle)
    outputs = {"bundle": str(Path(bundle).relative_to(out))}
    summary: dict[str, Any] = {"train_seconds": time.perf_counter() - t0}
    if m["ensemble"] > 0:
        log(f"training an ensemble of {m['ensemble']} flows on bootstrap replicas")
        train_ensemble(events, out / "ensemble", m["ensemble"], train=tc, flow=flow, force=True, progress=True,
                       **common)
        outputs["ensemble"] = "ensemble"
    return outputs, summary


def _stage_generate(cfg: Mapping[str, Any], out: Path, records: Mapping[str, StageRecord],
                    log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    from .generate import generate_templates

    g = cfg["generate"]
    lo, hi = cfg["selection"]["mll_range"]
    bundle = out / records["train"].outputs["bundle"]
    binning = Binning(lo, hi, g["bin_width"])
    target = out / "templates.root"
    log(f"generating {g['events']:,} events with the {g['backend']} backend into {target.name}")
    if g["shards"] > 0:
        from .distributed import generate_distributed

        templates = generate_distributed(bundle, g["events"], cfg["run"]["seed"], target, shards=g["shards"],
                                         scheduler=g["scheduler"] or None, backend=g["backend"], device=g["device"],
                                         binning=binning, force=True)
    else:
        templates = generate_templates(bundle, g["events"], cfg["run"]["seed"], backend=g["backend"], device=g["device"],
                                       threads=_workers(cfg), binning=binning, progress=True)
    templates.write(target, force=True)
    prov = templates.provenance
    summary = {"n_events": g["events"], "n_selected": prov.get("n_selected"), "backend": g["backend"]}
    return {"templates": "templates.root"}, summary


def _stage_spurious(cfg: Mapping[str, Any], out: Path, records: Mapping[str, StageRecord],
                    log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    from .scan import spurious_signal
    from .signal import SignalModel
    from .spurious import Criteria

    s = cfg["spurious"]
    lo, hi = s["masses"]
    masses = tuple(float(x) for x in np.round(np.arange(lo, hi + 1e-9, s["step"]), 6))
    signal = SignalModel.read_json(out / records["signal"].outputs["model"])
    criteria = Criteria(max_z_spur=s["max_spurious_over_deltas"], min_chi2_pvalue=s["min_pvalue"])
    neff = None
    if s["template_errors"] == "effective":
        neff = effective_events(records["validate"].summary)
        known = {c: n for c, n in neff.items() if n is not None}
        log("template errors: those of the model's effective size N_eff (amplification), "
            + (", ".join(f"{c} {n:.3g}" for c, n in known.items()) if known else "unknown: the template's own"))
    log(f"spurious-signal scan: {len(masses)} Higgs masses at {s['lumi_fb']:g} fb^-1")
    res = spurious_signal(out / records["generate"].outputs["templates"], signal=signal, lumi_fb=s["lumi_fb"],
                          functions=s["functions"] or None, masses=masses, criteria=criteria, workers=_workers(cfg),
                          effective_events=neff)
    res.write(out / "spurious", force=True)
    log("\n" + res.table())
    return {"folder": "spurious", "summary": "spurious/summary.json"}, {
        "chosen": res.chosen, "effective_events": {c.name: c.kish_events for c in res.inputs},
        "error_inflation": {c.name: c.inflation for c in res.inputs}}


def effective_events(validate_summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The events the generated template is worth, per category, from the validation's amplification.

    The ensemble's :math:`N_\\mathrm{eff}` when there is one (it sees the model's own spread),
    else the quantile method's; a central value that is infinite (the generator is as good as
    the held-out events can tell) is replaced by its one-sided 95 % lower limit. ``None``
    for a category without an estimate (its template keeps its own errors).
    """
    per = ((validate_summary or {}).get("amplification") or {}).get("per_category") or {}
    out: dict[str, float | None] = {}
    for region, a in per.items():
        if region == "inclusive" or not isinstance(a, dict):
            continue
        n = None
        for method in ("ensemble", "quantile"):
            m = a.get(method) or {}
            for key in ("n_eff", "n_eff_limit95"):
                v = m.get(key)
                if isinstance(v, (int, float)) and np.isfinite(v) and v > 0:
                    n = float(v)
                    break
            if n is not None:
                break
        out[region] = n
    return out


def _stage_validate(cfg: Mapping[str, Any], out: Path, records: Mapping[str, StageRecord],
                    log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    from ._jsonutil import to_jsonable
    from .validate import ValidationConfig, run_validation
    from .validate_report import build_report

    v = cfg["validate"]
    if not v["enabled"]:
        return {}, {"skipped": "validate.enabled = false"}
    ens = records["train"].outputs.get("ensemble")
    vc = ValidationConfig(n_generate=v["events"], seed=cfg["run"]["seed"], lumi_fb=cfg["spurious"]["lumi_fb"],
                          spurious=bool(v["spurious_split"] and ens), spurious_workers=_workers(cfg))
    res = run_validation(out / records["train"].outputs["bundle"], _load_npz(out / records["sample"].outputs["heldout"]),
                         training=_load_npz(out / records["sample"].outputs["training"]),
                         ensemble=(out / ens) if ens else None,
                         templates=out / records["generate"].outputs["templates"], config=vc, log=log)
    build_report(res, title="dyroot validation").write(out / "validation", force=True)
    return {"folder": "validation", "html": "validation/index.html"}, {
        "verdicts": res.verdicts(), "timings": res.timings, "notes": res.notes,
        "amplification": to_jsonable(res.to_dict()["amplification"])}


def _stage_report(cfg: Mapping[str, Any], out: Path, records: Mapping[str, StageRecord],
                  log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    from .run_report import build_run_report

    report = build_run_report(cfg, out, records)
    report.write(out / "report", force=True)
    return {"html": "report/index.html"}, {}


_RUNNERS = {"sample": _stage_sample, "signal": _stage_signal, "train": _stage_train, "generate": _stage_generate,
            "spurious": _stage_spurious, "validate": _stage_validate, "report": _stage_report}


# ----------------------------------------------------------------------------------------------


def _stamp_path(out: Path, name: str) -> Path:
    return out / ".dyroot" / "stages" / f"{name}.json"


def _read_stamp(out: Path, name: str) -> StageRecord | None:
    p = _stamp_path(out, name)
    try:
        d = json.loads(p.read_text())
        return StageRecord(d["name"], d["key"], d["outputs"], d["seconds"], d["summary"], reused=True)
    except (OSError, ValueError, KeyError):
        return None


def _write_stamp(out: Path, rec: StageRecord) -> None:
    from ._jsonutil import to_jsonable
    from .bundle import write_json

    p = _stamp_path(out, rec.name)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_json(p, to_jsonable(rec.to_dict()))


def run_pipeline(cfg: Mapping[str, Any], *, force: bool = False, until: str | None = None,
                 log: Callable[[str], None] | None = None) -> RunResult:
    """Run (or reuse) every stage of a validated configuration.

    Args:
        cfg: a configuration from :func:`dyroot.config.load_config` / ``validate``.
        force: rerun every stage even if its record matches.
        until: stop after this stage (e.g. ``"train"``).
        log: where progress lines go (default: standard error).

    Returns:
        The :class:`RunResult`; ``result.report`` is the HTML report.

    Raises:
        ConfigError: an unknown ``until``; any stage's own errors propagate unchanged
            (the stage's record is not written, so the next run redoes it).
    """
    if until is not None and until not in STAGES:
        raise ConfigError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(cfg["run"]["output"])
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, StageRecord] = {}
    names = list(STAGES)
    for i, name in enumerate(names, 1):
        key = _key(cfg, name, records)
        old = None if force else _read_stamp(out, name)
        if old is not None and old.key == key and all((out / p).exists() for p in old.outputs.values()):
            records[name] = old
            say(f"[{i}/{len(names)}] {name}: reused ({old.seconds:.0f} s when made)")
        else:
            say(f"[{i}/{len(names)}] {name} ...")
            t0 = time.perf_counter()
            outputs, summary = _RUNNERS[name](cfg, out, records, lambda s, n=name: say(f"  {n}: {s}"))
            rec = StageRecord(name, key, outputs, time.perf_counter() - t0, summary)
            _write_stamp(out, rec)
            records[name] = rec
            say(f"[{i}/{len(names)}] {name}: done in {rec.seconds:.0f} s")
        if name == until:
            break
    return RunResult(out, records)
