"""JSON helpers shared by the validation modules: numpy and non-finite numbers made JSON-safe."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Arrays to lists, numpy scalars to Python, non-finite floats to ``"inf"``/``"-inf"``/``"nan"``.

    Recurses into dicts, lists, tuples and dataclasses, so ``json.dumps(to_jsonable(x),
    allow_nan=False)`` always works (strict JSON has no NaN or Infinity).

    Example:
        >>> to_jsonable({"a": np.array([1.0, np.inf]), "b": np.int64(3)})
        {'a': [1.0, 'inf'], 'b': 3}
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        if math.isfinite(v):
            return v
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return obj
