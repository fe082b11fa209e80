r"""A small, safe expression language for weights, categories and selections.

Pure module (numpy; awkward arrays work too, through numpy's ufunc protocol).
Used by :mod:`dyroot.io` to evaluate user expressions such as
``"genWeight * puWeight"``, ``"mll > 110 && abs(mu1_eta) < 2.4"`` or
``"where(ptll < 15, 0, 1)"`` on arrays, without ``eval``.

Syntax: Python expressions over names (branches or dyroot columns) and numbers,
with ``+ - * / // % **``, comparisons (chained comparisons allowed), ``and``/``or``/``not``
and their C++ spellings ``&&``/``||``/``!`` (element-wise, with the usual C++ and
Python precedence: comparisons bind tighter), ``& | ~`` (element-wise, Python
precedence: parenthesise comparisons), ``a if cond else b``, ``true``/``false``,
and the functions in :data:`FUNCTIONS` (``abs``, ``sqrt``, ``exp``, ``log``,
``min``/``max`` (element-wise, two arguments), ``where``, trigonometric ...).
Anything else (attributes, subscripts, lambdas) is refused with a clear error.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Mapping

import numpy as np

from .exceptions import ConfigError

__all__ = ["FUNCTIONS", "names_in", "evaluate"]

#: Functions an expression may call.
FUNCTIONS: dict[str, Any] = {
    "abs": np.abs, "fabs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log10": np.log10,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arctan2": np.arctan2, "atan2": np.arctan2,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "pow": np.power, "hypot": np.hypot,
    "min": np.minimum, "max": np.maximum, "minimum": np.minimum, "maximum": np.maximum,
    "where": np.where, "floor": np.floor, "ceil": np.ceil, "isfinite": np.isfinite,
    "int": lambda x: np.asarray(x).astype(np.int64),
}
_CONSTANTS = {"true": True, "false": False, "True": True, "False": False, "pi": np.pi}

_BIN = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power,
    ast.BitAnd: np.bitwise_and, ast.BitOr: np.bitwise_or, ast.BitXor: np.bitwise_xor,
}
_CMP = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
    ast.Eq: np.equal, ast.NotEq: np.not_equal,
}


def _translate(expr: str) -> str:
    """C++ logical operators to Python keywords (``!=`` is kept)."""
    s = expr.replace("&&", " and ").replace("||", " or ")
    return re.sub(r"!(?!=)", " not ", s)


def _parse(expr: str) -> ast.Expression:
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"an expression must be a non-empty string, got {expr!r}")
    try:
        return ast.parse(_translate(expr).strip(), mode="eval")
    except SyntaxError as err:
        msg = f"cannot parse the expression {expr!r}: {err.msg}; use Python or C++ arithmetic and comparisons"
        raise ConfigError(msg) from None


def names_in(expr: str) -> set[str]:
    """The variable names an expression reads (functions and constants excluded).

    Example:
        >>> sorted(names_in("mll > 110 && abs(Muon_eta_0) < 2.4"))
        ['Muon_eta_0', 'mll']
    """
    tree = _parse(expr)
    funcs = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - funcs - set(_CONSTANTS)


def evaluate(expr: str, namespace: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` element-wise with names taken from ``namespace``.

    Args:
        expr: the expression (see the module docstring for the syntax).
        namespace: name -> array (numpy or awkward) or number.

    Returns:
        The resulting array (or a scalar, if the expression reads no array).

    Raises:
        ConfigError: syntax the language does not support, an unknown function, or
            a name missing from ``namespace``.

    Example:
        >>> evaluate("x > 1 && !(y == 2)", {"x": np.array([0, 2, 3]), "y": np.array([2, 2, 1])})
        array([False, False,  True])
    """
    tree = _parse(expr)

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in namespace:
                return namespace[node.id]
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise ConfigError(f"the expression {expr!r} reads {node.id!r}, which is not available")
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            return _BIN[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            if isinstance(node.op, ast.USub):
                return np.negative(v)
            if isinstance(node.op, ast.UAdd):
                return v
            if isinstance(node.op, ast.Not):
                return np.logical_not(v)
            if isinstance(node.op, ast.Invert):
                return np.invert(v)
        if isinstance(node, ast.BoolOp):
            f = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = ev(node.values[0])
            for v in node.values[1:]:
                out = f(out, ev(v))
            return out
        if isinstance(node, ast.Compare):
            left, out = ev(node.left), None
            for op, comp in zip(node.ops, node.comparators):
                if type(op) not in _CMP:
                    break
                right = ev(comp)
                r = _CMP[type(op)](left, right)
                out = r if out is None else np.logical_and(out, r)
                left = right
            else:
                return out
        if isinstance(node, ast.IfExp):
            return np.where(ev(node.test), ev(node.body), ev(node.orelse))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id not in FUNCTIONS:
                msg = (f"unknown function {node.func.id!r} in {expr!r}; available: "
                       f"{', '.join(sorted(FUNCTIONS))}")
                raise ConfigError(msg)
            return FUNCTIONS[node.func.id](*(ev(a) for a in node.args))
        msg = (f"unsupported syntax {ast.unparse(node)!r} in the expression {expr!r}; use names, numbers, "
               "arithmetic, comparisons, and/or/not (&&, ||, !) and the functions of dyroot._io_expr.FUNCTIONS")
        raise ConfigError(msg)

    return ev(tree)
