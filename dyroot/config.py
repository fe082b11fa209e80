r"""The run configuration: one TOML file that drives every stage of ``dyroot run``.

Pure module (no ROOT, no torch). :data:`SCHEMA` is the one definition of every key:
its type, default, allowed values and the sentence that documents it. From it come
the validation (:func:`load_config` lists *every* problem before any long work
starts), the defaults, and the commented example that ``dyroot init`` writes
(:func:`example_toml`), so the three can never disagree.

Example:
    >>> cfg = validate({"generate": {"events": 1000}, "run": {"output": "out"}})
    >>> cfg["generate"]["events"], cfg["generate"]["backend"], cfg["spurious"]["lumi_fb"]
    (1000, 'sofie', 139.0)
    >>> validate({"extra": {}, "generate": {"events": -1, "backend": "gpu"}})
    Traceback (most recent call last):
    ...
    dyroot.exceptions.ConfigError: 3 problems in the configuration:
      - unknown section [extra]; known sections: run, input, simulate, signal, selection, categories, model, generate, spurious, validate
      - generate.events = -1: must be >= 1
      - generate.backend = 'gpu': must be one of 'sofie', 'torch', 'onnxruntime'
"""

from __future__ import annotations

import copy
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .exceptions import ConfigError

__all__ = ["Key", "SCHEMA", "defaults", "validate", "load_config", "example_toml", "to_toml", "DEMO_CONFIG"]

_NUMBER = (int, float)


@dataclass(frozen=True)
class Key:
    """One configuration key.

    Args:
        default: the value when the key is absent (its type is the key's type; ``None``
            means "not set", and then ``kind`` gives the type).
        doc: one sentence for the example file and the error messages.
        choices: the allowed values, if a closed set.
        minimum: the smallest allowed number.
        above: ``minimum`` itself is not allowed (the value must be greater).
        kind: the type when ``default`` is ``None`` or to be more specific
            (``"int"``, ``"float"``, ``"str"``, ``"bool"``, ``"list[str]"``,
            ``"list[float]"``, ``"range"`` (two increasing numbers), ``"table"``,
            ``"list[table]"``).
    """

    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    above: bool = False
    kind: str | None = None

    @property
    def type(self) -> str:
        if self.kind:
            return self.kind
        d = self.default
        if isinstance(d, bool):
            return "bool"
        if isinstance(d, int):
            return "int"
        if isinstance(d, float):
            return "float"
        if isinstance(d, str):
            return "str"
        if isinstance(d, dict):
            return "table"
        raise TypeError(f"give a kind for default {d!r}")


#: Every section and key of a run configuration, with its default and documentation.
SCHEMA: dict[str, tuple[str, dict[str, Key]]] = {
    "run": ("The whole run.", {
        "output": Key("dyroot-run", "folder where every stage writes its files (created; finished stages are reused)"),
        "seed": Key(1, "master seed; each stage derives its own streams from it", minimum=0),
        "workers": Key(0, "processes/threads to use; 0 = every usable core", minimum=0),
    }),
    "input": ("Where the Drell-Yan events come from.", {
        "files": Key([], "ROOT files or globs; empty = simulate a reference sample with Pythia 8 ([simulate])",
                     kind="list[str]"),
        "tree": Key("", "TTree name; empty = the format's default ('events' for dyroot files, 'Events' for NanoAOD)"),
        "format": Key("dyroot", "branch-name preset", choices=("dyroot", "nanoaod", "atlas")),
        "mapping": Key({}, "dyroot name -> branch or expression, overriding the preset (e.g. mu1_pt = 'lep_pt[0]')"),
        "units": Key("", "units of the momenta in the files; empty = the format's default", choices=("", "GeV", "MeV")),
        "weight": Key("", "event-weight expression; empty = the format's default"),
        "category": Key("", "category-index expression; empty = the [categories] boxes on the kinematics"),
        "selection": Key("", "extra selection expression applied when reading"),
        "nonfinite": Key("raise", "what to do with NaN/inf values", choices=("raise", "drop")),
        "heldout_fraction": Key(0.2, "fraction of the events kept out of training, for validation", minimum=0.0),
    }),
    "simulate": ("The reference sample made with Pythia 8 when [input] has no files.", {
        "events": Key(300_000, "events written after the training pre-selection", minimum=1),
        "preset": Key("training", "selection preset of the sample", choices=("training", "analysis")),
        "sqrt_s": Key(13.0, "centre-of-mass energy in TeV", minimum=0.0, above=True),
        "mass_window": Key(None, "generator gamma*/Z mass window in GeV; unset = the preset's", kind="range"),
    }),
    "signal": ("The signal shape (double-sided Crystal Ball per category).", {
        "source": Key("simulate", "'simulate' = fit gg->H->mumu samples made with Pythia 8; or a path to such a file"),
        "events": Key(30_000, "signal events simulated per Higgs mass", minimum=100),
        "mh": Key([125.0], "Higgs masses (GeV) of the signal samples; several are interpolated", kind="list[float]"),
    }),
    "selection": ("The analysis selection applied to every generated event (GeV).", {
        "lead_pt": Key(27.0, "leading-muon pT threshold", minimum=0.0),
        "sublead_pt": Key(15.0, "subleading-muon pT threshold", minimum=0.0),
        "max_abs_eta": Key(2.7, "both muons within |eta| < this", minimum=0.0),
        "mll_range": Key([110.0, 160.0], "fit range in GeV", kind="range"),
    }),
    "categories": ("Analysis categories.", {
        "scheme": Key("default", "'default' = the six kinematic categories of arXiv:1705.04582; 'custom' = [[categories.custom]]",
                      choices=("default", "custom")),
        "custom": Key([], "list of {name = ..., ranges = {variable = [lo, hi]}} boxes, first match wins",
                      kind="list[table]"),
    }),
    "model": ("The normalizing flow and its training.", {
        "architecture": Key("spline", "coupling transform", choices=("spline", "affine")),
        "layers": Key(6, "coupling layers", minimum=1),
        "hidden": Key(64, "hidden units per conditioner layer", minimum=1),
        "bins": Key(8, "spline bins", minimum=2),
        "epochs": Key(20, "maximum training epochs", minimum=1),
        "batch_size": Key(4096, "events per gradient step", minimum=2),
        "lr": Key(3e-3, "initial learning rate", minimum=0.0, above=True),
        "patience": Key(6, "early stopping after this many epochs without improvement", minimum=1),
        "context": Key("", "'' = unconditional (categories from the kinematics); 'category' = one-hot category context",
                       choices=("", "category")),
        "ensemble": Key(0, "extra flows trained on bootstrap replicas for the model-uncertainty estimate", minimum=0),
        "device": Key("cpu", "torch device of the training ('cpu', 'cuda')"),
    }),
    "generate": ("The templates.", {
        "events": Key(100_000_000, "events generated (before cuts)", minimum=1),
        "backend": Key("sofie", "inference engine", choices=("sofie", "torch", "onnxruntime")),
        "device": Key("cpu", "torch backend device ('cpu', 'cuda')"),
        "bin_width": Key(0.1, "template bin width in GeV", minimum=0.0, above=True),
        "scheduler": Key("", "Dask scheduler address (tcp://host:port); empty = this machine"),
        "shards": Key(0, "shards for Dask; 0 = no Dask, one process", minimum=0),
    }),
    "spurious": ("The spurious-signal test.", {
        "lumi_fb": Key(139.0, "data luminosity in fb^-1", minimum=0.0, above=True),
        "masses": Key([120.0, 130.0], "Higgs-mass scan range in GeV", kind="range"),
        "step": Key(0.5, "Higgs-mass step in GeV", minimum=0.0, above=True),
        "functions": Key([], "candidate functions (names or families); empty = the default catalogue", kind="list[str]"),
        "max_spurious_over_deltas": Key(0.2, "criterion |S_spur| < this * deltaS", minimum=0.0, above=True),
        "min_pvalue": Key(0.01, "criterion: background-only chi2 p-value above this", minimum=0.0),
        "template_errors": Key("effective", "'effective' = Delta_MC and the chi2 use the errors of the events the "
                               "template is worth (N_eff from the validation's amplification); 'generated' = of the "
                               "events drawn (too small beyond N_eff)", choices=("effective", "generated")),
    }),
    "validate": ("Are the generated events statistically sound?", {
        "enabled": Key(True, "run the validation stage"),
        "events": Key(200_000, "events generated for the fidelity, amplification and memorisation checks", minimum=1000),
        "spurious_split": Key(True, "split the spurious signal's uncertainty (needs [model] ensemble > 1)"),
    }),
}


def defaults() -> dict[str, dict[str, Any]]:
    """Every key at its default (a fresh copy)."""
    return {sec: {k: copy.deepcopy(key.default) for k, key in keys.items()} for sec, (_, keys) in SCHEMA.items()}


def _check(where: str, value: Any, key: Key) -> tuple[Any, list[str]]:
    """The value converted to the key's type, and the problems found."""
    t = key.type
    bad = f"{where} = {value!r}"
    if value is None:
        return None, []
    if t == "bool":
        if not isinstance(value, bool):
            return value, [f"{bad}: must be true or false"]
    elif t in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, _NUMBER):
            return value, [f"{bad}: must be a number"]
        if t == "int" and not float(value).is_integer():
            return value, [f"{bad}: must be a whole number"]
        value = int(value) if t == "int" else float(value)
        if not math.isfinite(value):
            return value, [f"{bad}: must be finite"]
        if key.minimum is not None and (value <= key.minimum if key.above else value < key.minimum):
            return value, [f"{bad}: must be {'>' if key.above else '>='} {key.minimum:g}"]
    elif t == "str":
        if not isinstance(value, str):
            return value, [f"{bad}: must be a string"]
    elif t in ("list[str]", "list[float]", "range", "list[table]"):
        if not isinstance(value, list):
            return value, [f"{bad}: must be a list"]
        inner = {"list[str]": str, "list[float]": _NUMBER, "range": _NUMBER, "list[table]": dict}[t]
        if any(isinstance(v, bool) or not isinstance(v, inner) for v in value):
            return value, [f"{bad}: every element must be a {'number' if inner is _NUMBER else inner.__name__}"]
        if t in ("list[float]", "range"):
            value = [float(v) for v in value]
        if t == "range" and (len(value) != 2 or not value[0] < value[1]):
            return value, [f"{bad}: must be [lo, hi] with lo < hi"]
    elif t == "table":
        if not isinstance(value, dict):
            return value, [f"{bad}: must be a table"]
    if key.choices is not None and value not in key.choices:
        return value, [f"{bad}: must be one of {', '.join(repr(c) for c in key.choices)}"]
    return value, []


def validate(raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Merge ``raw`` over the defaults and check everything.

    Args:
        raw: the parsed TOML (sections of keys).

    Returns:
        The complete configuration (every section, every key).

    Raises:
        ConfigError: listing every problem at once (unknown sections/keys with the
            nearest known names, wrong types, out-of-range values, inconsistencies).
    """
    from .exceptions import nearest

    cfg = defaults()
    problems: list[str] = []
    for sec, body in raw.items():
        if sec not in SCHEMA:
            close = nearest(sec, SCHEMA)
            hint = f" (did you mean [{close[0]}]?)" if close else f"; known sections: {', '.join(SCHEMA)}"
            problems.append(f"unknown section [{sec}]{hint}")
            continue
        if not isinstance(body, dict):
            problems.append(f"[{sec}] must be a table of keys, got {body!r}")
            continue
        keys = SCHEMA[sec][1]
        for name, value in body.items():
            if name not in keys:
                close = nearest(name, keys)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(keys)}"
                problems.append(f"unknown key {sec}.{name}{hint}")
                continue
            value, errs = _check(f"{sec}.{name}", value, keys[name])
            problems += errs
            if not errs:
                cfg[sec][name] = value
    problems += _consistency(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _consistency(cfg: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Problems that involve several keys."""
    out = []
    if not 0.0 < cfg["input"]["heldout_fraction"] < 0.9:
        out.append(f"input.heldout_fraction = {cfg['input']['heldout_fraction']}: must be in (0, 0.9)")
    if cfg["categories"]["scheme"] == "custom":
        customs = cfg["categories"]["custom"]
        if not customs:
            out.append("categories.scheme = 'custom' needs at least one [[categories.custom]] entry")
        for i, c in enumerate(customs):
            if not isinstance(c.get("name"), str) or not isinstance(c.get("ranges"), dict):
                out.append(f"categories.custom[{i}] needs name = '...' and ranges = {{variable = [lo, hi]}}")
    lo, hi = cfg["selection"]["mll_range"]
    mlo, mhi = cfg["spurious"]["masses"]
    if not lo < mlo <= mhi < hi:
        out.append(f"spurious.masses {cfg['spurious']['masses']} must lie inside selection.mll_range {[lo, hi]}")
    width = cfg["generate"]["bin_width"]
    if width > 0 and abs(round((hi - lo) / width) * width - (hi - lo)) > 1e-9 * (hi - lo):
        out.append(f"generate.bin_width = {width} does not divide selection.mll_range {[lo, hi]}")
    if cfg["signal"]["source"] == "simulate" and not cfg["signal"]["mh"]:
        out.append("signal.mh needs at least one Higgs mass when signal.source = 'simulate'")
    elif cfg["signal"]["source"] != "simulate" and not Path(cfg["signal"]["source"]).exists():
        out.append(f"signal.source = {cfg['signal']['source']!r}: no such file (or use 'simulate')")
    if cfg["validate"]["spurious_split"] and cfg["validate"]["enabled"] and cfg["model"]["ensemble"] == 1:
        out.append("model.ensemble = 1 gives no spread: use 0 (no ensemble) or >= 2")
    if cfg["spurious"]["template_errors"] == "effective" and not cfg["validate"]["enabled"]:
        out.append("spurious.template_errors = 'effective' needs the validation's amplification: set "
                   "validate.enabled = true, or spurious.template_errors = 'generated'")
    if cfg["generate"]["backend"] != "torch" and cfg["generate"]["device"] != "cpu":
        out.append(f"generate.device = {cfg['generate']['device']!r} needs generate.backend = 'torch'")
    for f in cfg["input"]["files"]:
        if not any(ch in f for ch in "*?[") and "://" not in f and not Path(os.path.expanduser(f)).exists():
            out.append(f"input.files: {f!r} does not exist")
    return out


def load_config(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read and validate a TOML configuration; relative paths are taken from its folder.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or has problems (all listed).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no configuration file {str(p)!r}; `dyroot init {p}` writes a commented example")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p} is not valid TOML: {err}") from err
    base = p.resolve().parent
    run = raw.get("run") if isinstance(raw.get("run"), dict) else None
    if run is not None and isinstance(run.get("output"), str):
        run["output"] = str(base / os.path.expanduser(run["output"]))
    inp = raw.get("input") if isinstance(raw.get("input"), dict) else None
    if inp is not None and isinstance(inp.get("files"), list):
        inp["files"] = [str(base / os.path.expanduser(f)) if isinstance(f, str) and "://" not in f else f
                        for f in inp["files"]]
    sig = raw.get("signal") if isinstance(raw.get("signal"), dict) else None
    if sig is not None and isinstance(sig.get("source"), str) and sig["source"] != "simulate":
        sig["source"] = str(base / os.path.expanduser(sig["source"]))
    return validate(raw)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, int):
        return f"{v:_}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def example_toml() -> str:
    """A complete, commented configuration at the defaults (what ``dyroot init`` writes)."""
    lines = [
        "# dyroot run configuration: `dyroot run THIS_FILE` runs every stage, reusing finished ones.",
        "# Every key is optional; the values below are the defaults. Paths are relative to this file.",
        "",
    ]
    for sec, (doc, keys) in SCHEMA.items():
        lines += [f"# {doc}", f"[{sec}]"]
        for name, key in keys.items():
            extra = f" (one of {', '.join(repr(c) for c in key.choices)})" if key.choices else ""
            lines.append(f"# {key.doc}{extra}")
            if key.default is None or (key.type == "list[table]"):
                example = "[100.0, 500.0]" if key.type == "range" else (
                    '[{name = "central", ranges = {max_abs_eta = [0.0, 1.0]}}]' if key.type == "list[table]" else "")
                lines.append(f"# {name} = {example}")
            else:
                lines.append(f"{name} = {_toml_value(key.default)}")
        lines.append("")
    return "\n".join(lines)


def to_toml(raw: Mapping[str, Mapping[str, Any]]) -> str:
    """A configuration (sections of keys) as TOML text."""
    lines = []
    for sec, keys in raw.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


#: The configuration of ``dyroot demo`` (the README's main job): the defaults, with sizes
#: chosen to finish within 20 minutes on 2 cores (measured 9 min 01 s: see README).
DEMO_CONFIG: dict[str, dict[str, Any]] = {
    "run": {"output": "demo"},
    "simulate": {"events": 400_000},
    "signal": {"events": 20_000, "mh": [120.0, 125.0, 130.0]},
    "generate": {"events": 100_000_000},
    "validate": {"events": 1_000_000},
}
