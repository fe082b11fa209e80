r"""The background-function catalogue of the spurious-signal test, as data.

Pure module (numpy/scipy, never ROOT). Every candidate background shape is a
:class:`BackgroundFunction`: a name, a family, its free parameters (start values and
ranges), its references, and ONE formula string. The same string is evaluated by
numpy here (:meth:`BackgroundFunction.evaluate`, used for tests, starting values and
plots) and handed to RooFit by :mod:`dyroot.fit` (as a ``RooFormulaVar`` /
``RooGenericPdf``), so the two can never disagree.

Formula language (a subset shared by Python and ROOT's TFormula): numbers, ``+ - * /``,
parentheses, ``exp``, ``log``, ``sqrt``, ``pow(a, b)`` (no ``^`` or ``**``), the
parameter names, named constants of the entry, and these symbols:

``m``
    the dimuon mass in GeV;
``x``
    :math:`m / 100` (a fixed scale: the power-law families depend on it);
``t``
    :math:`(2m - m_{lo} - m_{hi}) / (m_{hi} - m_{lo}) \in [-1, 1]` over the fit range;
``u``
    :math:`(m - m_{lo}) / (m_{hi} - m_{lo}) \in [0, 1]` (Bernstein polynomials);
``core``
    the Drell-Yan core of the category (:func:`dy_core`): the LO
    :math:`\gamma^*/Z \to \mu\mu` lineshape with interference, convolved with the
    category's Gaussian mass resolution. It has no free parameter.

The normalisation is never a parameter: the fit adds the yield, so ``n_params``
counts shape parameters only (that is the number the selection minimises).

Users add their own entries without editing dyroot: call :func:`register`, list them
in a TOML/JSON file read by :func:`load_functions_file` (``dyroot spurious
--functions-file``), or expose them under the entry-point group
``dyroot.background_functions`` (an object, a list of them, or a callable returning them).

Example:
    >>> f = get_function("Epoly2")
    >>> f.n_params, f.expression
    (2, 'exp(a1*t + a2*pow(t,2))')
    >>> round(float(f.evaluate(135.0, {"a1": -1.0, "a2": 0.1})), 6)
    1.0
    >>> [g.name for g in default_functions()][:6]
    ['Epoly1', 'Epoly2', 'Epoly3', 'Epoly4', 'Epoly5', 'Power0']

References:
    ATLAS, A search for the dimuon decay of the Standard Model Higgs boson with the
    ATLAS detector, Phys. Lett. B 812 (2021) 135980, arXiv:2007.07830.
    CMS, Evidence for Higgs boson decay to a pair of muons, JHEP 01 (2021) 148,
    arXiv:2009.04363.
"""

from __future__ import annotations

import ast
import json
import math
import pathlib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .exceptions import ConfigError, MissingBranchError, MissingInputError

__all__ = [
    "Parameter",
    "BackgroundFunction",
    "DYCore",
    "ENTRY_POINT_GROUP",
    "register",
    "unregister",
    "get_function",
    "available_functions",
    "default_functions",
    "resolve_functions",
    "load_functions_file",
    "dy_lineshape",
    "dy_core",
    "gauss_legendre_nodes",
    "substitute",
    "initial_values",
]

#: Entry-point group scanned for user background functions.
ENTRY_POINT_GROUP = "dyroot.background_functions"

#: Z boson mass and width in GeV (PDG 2024), the default constants of the BWZ forms.
MZ_GEV = 91.1876
GZ_GEV = 2.4952

_FUNCS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "pow": np.power}
_SYMBOLS = ("m", "x", "t", "u", "core")
_TOKEN = re.compile(r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>\s+|.)")
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load,
                  ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)


def substitute(expr: str, mapping: Mapping[str, str]) -> str:
    """Replace whole identifiers of a formula (numbers such as ``1e-3`` are left alone).

    Example:
        >>> substitute("exp(a1*t) + 2e-3*t", {"t": "((m-135)/25)", "a1": "@1"})
        'exp(@1*((m-135)/25)) + 2e-3*((m-135)/25)'
    """
    out = []
    for tok in _TOKEN.finditer(expr):
        name = tok.group("name")
        out.append(mapping.get(name, name) if name is not None else tok.group(0))
    return "".join(out)


def _identifiers(expr: str) -> set[str]:
    return {t.group("name") for t in _TOKEN.finditer(expr) if t.group("name")}


def _check_formula(expr: str, where: str) -> None:
    if "^" in expr or "**" in expr:
        raise ConfigError(f"{where}: write powers as pow(a, b), not ^ or ** (in {expr!r})")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as err:
        raise ConfigError(f"{where}: the formula {expr!r} does not parse ({err.msg})") from err
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ConfigError(f"{where}: {type(node).__name__} is not allowed in a formula ({expr!r}); "
                              "use numbers, + - * /, exp, log, sqrt, pow and names")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS):
            raise ConfigError(f"{where}: only {', '.join(_FUNCS)} may be called in {expr!r}")


def gauss_legendre_nodes(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The two Gauss-Legendre nodes of every bin, :math:`c \mp h/(2\sqrt{3})`.

    The mean of a function at the two nodes is its bin average with an error
    :math:`h^4 f^{(4)}/4320`: the fits integrate over bins this way (see :mod:`dyroot.fit`).

    Example:
        >>> lo, hi = gauss_legendre_nodes(np.array([0.0, 1.0]))
        >>> round(float(lo[0]), 6), round(float(hi[0]), 6)
        (0.211325, 0.788675)
    """
    edges = np.asarray(edges, dtype=np.float64)
    c, h = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    d = h / (2.0 * math.sqrt(3.0))
    return c - d, c + d


@dataclass(frozen=True)
class Parameter:
    """A free shape parameter: starting value and allowed range.

    Args:
        name: identifier used in the formula.
        start: starting value.
        lo, hi: the range the fit may use.
    """

    name: str
    start: float
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name) or self.name in _SYMBOLS or self.name in _FUNCS:
            raise ConfigError(f"parameter name {self.name!r} is not an identifier or is reserved "
                              f"({', '.join(_SYMBOLS + tuple(_FUNCS))}); rename it")
        if not (self.lo <= self.start <= self.hi) or not self.lo < self.hi:
            raise ConfigError(f"parameter {self.name}: need lo < hi and lo <= start <= hi, "
                              f"got start={self.start}, range=({self.lo}, {self.hi})")


@dataclass(frozen=True)
class BackgroundFunction:
    r"""One candidate background shape.

    Args:
        name: unique name (``"Epoly3"``).
        expression: the formula (see the module docstring).
        parameters: the free shape parameters.
        family: family name (``"Epoly"``); members of a family nest.
        order: order within the family (the ``N`` of ``EpolyN``).
        constants: named fixed numbers used in the formula (``(("MZ", 91.1876),)``).
        description: one line for tables.
        references: publications (arXiv numbers) that use the form.
    """

    name: str
    expression: str
    parameters: tuple[Parameter, ...]
    family: str = "custom"
    order: int = 0
    constants: tuple[tuple[str, float], ...] = ()
    description: str = ""
    references: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"background function {self.name!r}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", self.name):
            raise ConfigError(f"{where}: the name must be an identifier-like string")
        _check_formula(self.expression, where)
        names = [p.name for p in self.parameters]
        consts = [c for c, _ in self.constants]
        if len(set(names + consts)) != len(names) + len(consts):
            raise ConfigError(f"{where}: parameter and constant names must be distinct, got {names + consts}")
        unknown = _identifiers(self.expression) - set(names) - set(consts) - set(_SYMBOLS) - set(_FUNCS)
        if unknown:
            raise ConfigError(f"{where}: unknown names {sorted(unknown)} in {self.expression!r}; declare them "
                              "as parameters or constants, or use the symbols m, x, t, u, core")
        unused = set(names) - _identifiers(self.expression)
        if unused:
            raise ConfigError(f"{where}: parameters {sorted(unused)} do not appear in the formula")

    # ------------------------------------------------------------------ properties

    @property
    def n_params(self) -> int:
        """Number of free shape parameters (the normalisation excluded)."""
        return len(self.parameters)

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def uses_core(self) -> bool:
        """Whether the formula multiplies the Drell-Yan core (needs :func:`dy_core`)."""
        return "core" in _identifiers(self.expression)

    def expanded(self, lo: float, hi: float, *, mass: str = "m") -> str:
        """The formula in terms of ``m`` (or ``mass``), the parameters and ``core`` only.

        Args:
            lo, hi: the fit range in GeV (defines ``t`` and ``u``).
            mass: the text to use for the mass (e.g. ``"(m+0.0289)"``).
        """
        width, mid = float(hi) - float(lo), float(hi) + float(lo)
        aliases = {
            "x": f"({mass}/100.0)",
            "t": f"((2.0*{mass}-{mid!r})/{width!r})",
            "u": f"(({mass}-{float(lo)!r})/{width!r})",
            "m": mass,
        }
        aliases.update({c: f"({v!r})" for c, v in self.constants})
        return substitute(self.expression, aliases)

    # ------------------------------------------------------------------ numpy evaluation

    def evaluate(self, m: Any, values: Mapping[str, float] | Sequence[float], *, lo: float = 110.0,
                 hi: float = 160.0, core: Any = None) -> np.ndarray:
        """The (unnormalised) function at masses ``m`` (GeV).

        Args:
            m: masses in GeV.
            values: parameter values, by name or in :attr:`param_names` order.
            lo, hi: the fit range (for ``t`` and ``u``).
            core: the core at ``m`` (array) or a callable of ``m``; needed if :attr:`uses_core`.

        Raises:
            ConfigError: a parameter value or the core is missing.
        """
        vals = values if isinstance(values, Mapping) else dict(zip(self.param_names, values))
        missing = [n for n in self.param_names if n not in vals]
        if missing:
            raise ConfigError(f"{self.name}: no value for parameters {missing}")
        m = np.asarray(m, dtype=np.float64)
        ns: dict[str, Any] = dict(_FUNCS)
        ns.update({n: float(vals[n]) for n in self.param_names})
        if self.uses_core:
            if core is None:
                raise ConfigError(f"{self.name} multiplies the Drell-Yan core: pass core= (see dy_core)")
            ns["core"] = core(m) if callable(core) else np.asarray(core, dtype=np.float64)
        ns["m"] = m
        with np.errstate(all="ignore"):
            out = eval(compile(self.expanded(lo, hi), self.name, "eval"), {"__builtins__": {}}, ns)  # noqa: S307
        return np.broadcast_to(np.asarray(out, dtype=np.float64), m.shape).copy()

    def bin_average(self, edges: np.ndarray, values: Mapping[str, float] | Sequence[float],
                    core_nodes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Bin averages by the two-node Gauss-Legendre rule (as the fits compute them).

        Args:
            edges: bin edges in GeV (the first and last give the range).
            values: parameter values.
            core_nodes: the core at the two nodes (:func:`gauss_legendre_nodes`).
        """
        lo_n, hi_n = gauss_legendre_nodes(edges)
        lo, hi = float(edges[0]), float(edges[-1])
        cl, ch = core_nodes if core_nodes is not None else (None, None)
        return 0.5 * (self.evaluate(lo_n, values, lo=lo, hi=hi, core=cl) + self.evaluate(hi_n, values, lo=lo, hi=hi, core=ch))

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the format of :func:`load_functions_file`)."""
        return {
            "name": self.name, "family": self.family, "order": self.order, "expression": self.expression,
            "parameters": [{"name": p.name, "start": p.start, "lo": p.lo, "hi": p.hi} for p in self.parameters],
            "constants": dict(self.constants), "description": self.description, "references": list(self.references),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BackgroundFunction":
        """Build an entry from :meth:`to_dict`'s format.

        Raises:
            ConfigError: for a missing key or an invalid entry.
        """
        try:
            params = tuple(Parameter(str(p["name"]), float(p["start"]), float(p["lo"]), float(p["hi"]))
                           for p in d["parameters"])
            return cls(name=str(d["name"]), expression=str(d["expression"]), parameters=params,
                       family=str(d.get("family", "custom")), order=int(d.get("order", len(params))),
                       constants=tuple((str(k), float(v)) for k, v in dict(d.get("constants", {})).items()),
                       description=str(d.get("description", "")), references=tuple(d.get("references", ())))
        except KeyError as err:
            raise ConfigError(f"background function entry {dict(d).get('name', '?')!r} lacks the key {err}; "
                              "give name, expression and parameters [{name, start, lo, hi}]") from err


# ----------------------------------------------------------------------------------------------
# The default catalogue

_ATLAS = "ATLAS, PLB 812 (2021) 135980, arXiv:2007.07830"
_CMS = "CMS, JHEP 01 (2021) 148, arXiv:2009.04363"
_BERN = "Bernstein polynomials as in CMS arXiv:1408.6865 (discrete profiling)"


def _poly(coefs: Sequence[str], var: str, first: int = 1) -> str:
    return " + ".join(f"{c}*{var}" if i + first == 1 else (c if i + first == 0 else f"{c}*pow({var},{i + first})")
                      for i, c in enumerate(coefs))


def _epoly(n: int, core: bool = False) -> BackgroundFunction:
    names = [f"a{i}" for i in range(1, n + 1)]
    params = tuple(Parameter(a, -1.0 if i == 0 else 0.0, -50.0, 50.0) for i, a in enumerate(names))
    expr = ("core*" if core else "") + f"exp({_poly(names, 't')})"
    what = "Drell-Yan core x " if core else ""
    return BackgroundFunction(
        f"CoreEpoly{n}" if core else f"Epoly{n}", expr, params, "CoreEpoly" if core else "Epoly", n,
        description=f"{what}exp(a1 t + ... + a{n} t^{n}), t = m scaled to [-1, 1]",
        references=(_ATLAS,))


def _power(n: int, core: bool = False) -> BackgroundFunction:
    names = [f"a{i}" for i in range(n + 1)]
    params = tuple(Parameter(a, (-2.0 if core else -5.0) if i == 0 else 0.0, -100.0, 100.0) for i, a in enumerate(names))
    expr = ("core*" if core else "") + f"pow(x, {_poly(names, 't', first=0)})"
    what = "Drell-Yan core x " if core else ""
    return BackgroundFunction(
        f"CorePower{n}" if core else f"Power{n}", expr, params, "CorePower" if core else "Power", n,
        description=f"{what}x^(a0 + a1 t + ... + a{n} t^{n}), x = m/100 GeV (the exponent a polynomial of degree {n} in m)",
        references=(_ATLAS + " (PowerN form recalled, see physics.md section 5)",))


def _bernstein_terms(n: int) -> tuple[str, tuple[Parameter, ...]]:
    terms, params = [], []
    for k in range(n + 1):
        basis = " * ".join(t for t in (f"{math.comb(n, k)}.0" if math.comb(n, k) != 1 else "",
                                       "" if k == 0 else ("u" if k == 1 else f"pow(u,{k})"),
                                       "" if k == n else ("(1-u)" if n - k == 1 else f"pow(1-u,{n - k})")) if t)
        if k == 0:
            terms.append(basis)
        else:
            params.append(Parameter(f"c{k}", round(math.exp(-2.0 * k / n), 4), -50.0, 50.0))
            terms.append(f"c{k}*{basis}")
    return "(" + " + ".join(terms) + ")", tuple(params)


def _bernstein(n: int) -> BackgroundFunction:
    expr, params = _bernstein_terms(n)
    return BackgroundFunction(f"Bernstein{n}", expr, params, "Bernstein", n,
                              description=f"Bernstein polynomial of degree {n} in u = (m - lo)/(hi - lo), c0 = 1 (coefficients may be negative)",
                              references=(_BERN,))


def _bwz_redux() -> BackgroundFunction:
    params = (Parameter("a1", 2.0, 0.5, 5.0), Parameter("a2", 0.0, -50.0, 50.0), Parameter("a3", 0.0, -50.0, 50.0))
    return BackgroundFunction(
        "BWZRedux", "exp(a2*t + a3*pow(t,2)) / (pow(m - MZ, a1) + pow(GZ/2, a1))", params, "BWZRedux", 3,
        constants=(("MZ", MZ_GEV), ("GZ", GZ_GEV)),
        description="CMS modified Breit-Wigner exp(a2 m + a3 m^2)/((m - MZ)^a1 + (GZ/2)^a1), exponent written in t",
        references=(_CMS,))


def _bwz_bern(n: int) -> BackgroundFunction:
    bern, cs = _bernstein_terms(n)
    return BackgroundFunction(
        f"BWZBern{n}", f"{bern} / (pow(m - MZ, 2) + pow(GZ/2, 2))", cs, "BWZBern", n,
        constants=(("MZ", MZ_GEV), ("GZ", GZ_GEV)),
        description=f"Breit-Wigner 1/((m - MZ)^2 + (GZ/2)^2) times a Bernstein polynomial of degree {n} "
                    "(CMS BWZ x Bernstein without BWZ's exp(a m): with a Bernstein factor it is degenerate)",
        references=(_CMS,))


def _defaults() -> list[BackgroundFunction]:
    out = [_epoly(n) for n in range(1, 6)] + [_power(n) for n in range(4)] + [_bernstein(n) for n in range(1, 6)]
    out += [_epoly(n, core=True) for n in range(1, 4)] + [_power(n, core=True) for n in range(3)]
    out += [_bwz_redux()] + [_bwz_bern(n) for n in range(1, 4)]
    return out


_DEFAULT_NAMES = tuple(f.name for f in _defaults())
_REGISTRY: dict[str, BackgroundFunction] = {f.name: f for f in _defaults()}
_ENTRY_POINTS_LOADED = False


def register(function: BackgroundFunction | Mapping[str, Any], *, replace: bool = False) -> BackgroundFunction:
    """Add a background function to the catalogue (for this process).

    Args:
        function: the entry, or a dict in :meth:`BackgroundFunction.to_dict` format.
        replace: allow replacing an entry of the same name.

    Returns:
        The registered entry.

    Raises:
        ConfigError: if the name is taken and ``replace`` is false.

    Example:
        >>> f = register({"name": "MyExp", "expression": "exp(b*x)",
        ...               "parameters": [{"name": "b", "start": -5, "lo": -20, "hi": 0}]})
        >>> get_function("MyExp").n_params
        1
        >>> unregister("MyExp")
    """
    fn = function if isinstance(function, BackgroundFunction) else BackgroundFunction.from_dict(function)
    if fn.name in _REGISTRY and not replace and _REGISTRY[fn.name] != fn:
        raise ConfigError(f"a background function named {fn.name!r} exists; pass replace=True or rename yours")
    _REGISTRY[fn.name] = fn
    return fn


def unregister(name: str) -> None:
    """Remove an entry added by :func:`register` (defaults cannot be removed)."""
    if name in _DEFAULT_NAMES:
        raise ConfigError(f"{name!r} is a default entry; defaults cannot be removed (choose functions by name instead)")
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        obj = obj() if callable(obj) and not isinstance(obj, BackgroundFunction) else obj
        for fn in ([obj] if isinstance(obj, (BackgroundFunction, Mapping)) else list(obj)):
            register(fn, replace=True)


def available_functions() -> list[str]:
    """Names of every registered function (defaults first, then user entries)."""
    _load_entry_points()
    return list(_REGISTRY)


def get_function(name: str) -> BackgroundFunction:
    """The entry called ``name``.

    Raises:
        MissingBranchError: (a ``KeyError``) listing the nearest names.
    """
    _load_entry_points()
    if name not in _REGISTRY:
        raise MissingBranchError("background function", name, _REGISTRY, "the catalogue (dyroot.functions)")
    return _REGISTRY[name]


def default_functions() -> list[BackgroundFunction]:
    """The default catalogue: Epoly1-5, Power0-3, Bernstein1-5, CoreEpoly1-3, CorePower0-2,
    BWZRedux, BWZBern1-3 (24 entries)."""
    return [_REGISTRY[n] for n in _DEFAULT_NAMES]


def resolve_functions(names: Iterable[str | BackgroundFunction] | str | None = None) -> list[BackgroundFunction]:
    """Entries from names (or entries), a comma-separated string, or ``None`` (the defaults).

    A name ending in ``*`` selects a family prefix (``"Epoly*"``).
    """
    if names is None:
        return default_functions()
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[BackgroundFunction] = []
    for n in names:
        if isinstance(n, BackgroundFunction):
            out.append(n)
        elif n.endswith("*"):
            hits = [get_function(k) for k in available_functions() if k.startswith(n[:-1])]
            if not hits:
                raise MissingBranchError("background function family", n, available_functions(), "the catalogue")
            out.extend(hits)
        else:
            out.append(get_function(n))
    seen: set[str] = set()
    return [f for f in out if not (f.name in seen or seen.add(f.name))]


def load_functions_file(path: str | pathlib.Path, *, replace: bool = False) -> list[BackgroundFunction]:
    """Register the entries of a TOML or JSON file and return them.

    The file holds a list ``functions`` of tables in :meth:`BackgroundFunction.to_dict`
    format, e.g. (TOML)::

        [[functions]]
        name = "ExpPow"
        expression = "exp(b*x) * pow(x, c)"
        parameters = [{name = "b", start = -1, lo = -20, hi = 20},
                      {name = "c", start = -4, lo = -20, hi = 20}]
        references = ["my note"]

    Raises:
        MissingInputError: if the file does not exist.
        ConfigError: for a malformed file or entry.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise MissingInputError(f"functions file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {err}") from err
    items = data.get("functions") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a list 'functions' of entries")
    return [register(BackgroundFunction.from_dict(d), replace=replace) for d in items]


# ----------------------------------------------------------------------------------------------
# The Drell-Yan core


@dataclass(frozen=True)
class DYCore:
    r"""Settings of the LO Drell-Yan lineshape (all overridable).

    Args:
        mz, gz: Z mass and width in GeV.
        sin2w: :math:`\sin^2\theta_W` (effective).
        up_fraction: share of up-type :math:`q\bar q` annihilations (the rest down-type);
            a stand-in for the parton luminosities, whose smooth mass dependence the
            empirical factor absorbs.
        running_width: use the s-dependent width :math:`\hat s\Gamma_Z/M_Z` (as Pythia).
    """

    mz: float = MZ_GEV
    gz: float = GZ_GEV
    sin2w: float = 0.23122
    up_fraction: float = 0.6
    running_width: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"mz": self.mz, "gz": self.gz, "sin2w": self.sin2w, "up_fraction": self.up_fraction,
                "running_width": self.running_width}


def dy_lineshape(m: Any, settings: DYCore = DYCore()) -> np.ndarray:
    r"""LO :math:`q\bar q \to \gamma^*/Z \to \mu\mu` mass spectrum shape, with interference.

    .. math::
        \frac{d\sigma}{dm} \propto \frac{1}{m} \sum_q w_q \left[Q_q^2 - 2 Q_q v_q v_\ell
        \,\mathrm{Re}\,\chi + (v_q^2 + a_q^2)(v_\ell^2 + a_\ell^2) |\chi|^2\right],\quad
        \chi = \frac{1}{4 s_W^2 c_W^2} \frac{\hat s}{\hat s - M_Z^2 + i \hat s \Gamma_Z / M_Z}

    with :math:`\hat s = m^2`, :math:`v_f = T_3 - 2 Q_f s_W^2`, :math:`a_f = T_3`
    (the :math:`1/\hat s` of the partonic cross-section times the Jacobian :math:`2m`).
    No parton luminosity: its smooth fall is left to the empirical factor.

    Args:
        m: masses in GeV.
        settings: the constants.

    Returns:
        The shape (arbitrary normalisation).
    """
    m = np.asarray(m, dtype=np.float64)
    s = m * m
    s2w = settings.sin2w
    kappa = 1.0 / (4.0 * s2w * (1.0 - s2w))
    width = s * settings.gz / settings.mz if settings.running_width else settings.mz * settings.gz
    chi = kappa * s / (s - settings.mz**2 + 1j * width)
    v_l, a_l = -0.5 + 2.0 * s2w, -0.5
    total = np.zeros_like(m)
    for frac, q, t3 in ((settings.up_fraction, 2.0 / 3.0, 0.5), (1.0 - settings.up_fraction, -1.0 / 3.0, -0.5)):
        v_q, a_q = t3 - 2.0 * q * s2w, t3
        total += frac * (q * q - 2.0 * q * v_q * v_l * chi.real + (v_q**2 + a_q**2) * (v_l**2 + a_l**2) * np.abs(chi) ** 2)
    return total / m


def dy_core(m: Any, resolution: float, settings: DYCore = DYCore(), *, step: float = 0.01) -> np.ndarray:
    r"""The Drell-Yan core: :func:`dy_lineshape` convolved with a Gaussian resolution.

    .. math:: \mathrm{core}(m) = \int L(m')\, G(m - m';\ \sigma = r\,m')\, dm'

    computed by the trapezoid rule on a grid of ``step`` GeV over :math:`\pm 8\sigma`.

    Args:
        m: masses in GeV.
        resolution: relative mass resolution :math:`r = \sigma_m / m` (e.g. 0.02);
            0 returns the bare lineshape.
        settings: lineshape constants.
        step: grid step in GeV.

    Returns:
        The core at ``m`` (arbitrary normalisation, the same for every ``m``).

    Example:
        >>> c = dy_core(np.array([110.0, 160.0]), 0.02)
        >>> bool(c[0] > c[1] > 0)
        True
    """
    m = np.asarray(m, dtype=np.float64)
    if resolution <= 0:
        return dy_lineshape(m, settings)
    if resolution > 0.2:
        raise ConfigError(f"resolution {resolution} is a relative width sigma_m/m; expected a value like 0.02")
    half = 8.0 * resolution * (float(m.max()) + 10.0)
    grid = np.arange(float(m.min()) - half, float(m.max()) + half + step, step)
    grid = grid[grid > 1.0]
    shape = dy_lineshape(grid, settings)
    sig = resolution * grid
    out = np.empty(m.size)
    flat = m.ravel()
    for start in range(0, flat.size, 256):
        chunk = flat[start:start + 256, None]
        g = np.exp(-0.5 * ((chunk - grid) / sig) ** 2) / (np.sqrt(2.0 * np.pi) * sig)
        out[start:start + 256] = np.trapezoid(g * shape, grid, axis=1)
    return out.reshape(m.shape)


# ----------------------------------------------------------------------------------------------
# Starting values


def initial_values(function: BackgroundFunction, edges: np.ndarray, counts: np.ndarray, *,
                   core_nodes: tuple[np.ndarray, np.ndarray] | None = None, iterations: int = 60) -> dict[str, float]:
    """Starting values from a weighted least-squares fit of log(counts).

    Cheap and robust: residuals :math:`w_i\\,(\\log \\bar f_i + c - \\log n_i)` with
    :math:`w_i = \\sqrt{n_i/n_{max}}` over the non-empty bins approximate the Poisson
    likelihood. A damped Gauss-Newton (Levenberg-Marquardt) iteration with numpy's
    ``lstsq``, the parameters clipped into their ranges. (Not scipy's ``least_squares``:
    imported after ROOT it fails with "Too large work array required" on this stack.)

    Args:
        function: the entry.
        edges: bin edges (GeV).
        counts: bin contents (any scale).
        core_nodes: the core at the Gauss-Legendre nodes, if the entry needs it.
        iterations: maximum number of iterations.

    Returns:
        ``{parameter: value}``; the entry's own starts if the data are too few.
    """
    counts = np.asarray(counts, dtype=np.float64)
    good = counts > 0
    names = function.param_names
    start = {p.name: p.start for p in function.parameters}
    if good.sum() <= function.n_params + 1:
        return start
    logn, w = np.log(counts[good]), np.sqrt(counts[good] / counts[good].max())
    lo = np.array([p.lo for p in function.parameters])
    hi = np.array([p.hi for p in function.parameters])

    def resid(theta: np.ndarray) -> np.ndarray:
        f = function.bin_average(edges, dict(zip(names, theta)), core_nodes)[good]
        with np.errstate(all="ignore"):
            r = np.log(np.where(f > 0, f, 1e-300)) - logn
            r = w * (r - np.average(r, weights=w * w))  # the log-normalisation, profiled
        return np.where(np.isfinite(r), r, 1e3)

    theta = np.array([p.start for p in function.parameters], dtype=np.float64)
    r = resid(theta)
    cost, lam = float(r @ r), 1e-3
    for _ in range(iterations):
        jac = np.empty((r.size, theta.size))
        for j in range(theta.size):
            step = 1e-6 * max(1.0, abs(theta[j]))
            t2 = theta.copy()
            t2[j] += step
            jac[:, j] = (resid(t2) - r) / step
        improved = False
        while lam < 1e8:
            a = np.vstack([jac, math.sqrt(lam) * np.diag(np.sqrt(np.sum(jac * jac, axis=0)) + 1e-12)])
            b = np.concatenate([-r, np.zeros(theta.size)])
            delta = np.linalg.lstsq(a, b, rcond=None)[0]
            trial = np.clip(theta + delta, lo, hi)
            rt = resid(trial)
            ct = float(rt @ rt)
            if np.isfinite(ct) and ct < cost:
                theta, r, improved = trial, rt, cost - ct > 1e-12 * cost
                cost, lam = ct, max(lam / 10.0, 1e-9)
                break
            lam *= 10.0
        if not improved:
            break
    return {n: float(v) for n, v in zip(names, theta)}
