"""The public surface: ``import dyroot`` is light, every advertised entry point resolves,
and ``dyroot --version`` / ``--help`` answer without ROOT or torch."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

HEAVY = ("ROOT", "cppyy", "torch", "onnx", "onnxruntime", "uproot")


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_is_light():
    out = _run("import sys, json, dyroot; dyroot.FLOW_FEATURES; dyroot.Selection(); "
               f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(out) == []


def test_every_entry_point_resolves():
    import dyroot

    assert sorted(dir(dyroot)) == sorted(dyroot.__all__)
    for name in dyroot.__all__:
        obj = getattr(dyroot, name)
        assert obj is not None, name
        if callable(obj) and not isinstance(obj, type):
            assert (obj.__doc__ or "").strip(), f"dyroot.{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dyroot.nope  # noqa: B018


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["spurious", "--help"], ["train", "--help"]])
def test_cli_answers_fast_without_heavy_imports(args):
    code = ("import sys, json, time; t = time.perf_counter(); from dyroot.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], "
            "'s': time.perf_counter() - t}))")
    t0 = time.perf_counter()
    last = _run(code).strip().splitlines()[-1]
    rec = json.loads(last)
    assert rec["heavy"] == [], rec
    assert rec["s"] < 1.0 and time.perf_counter() - t0 < 5.0  # issue 2: "under a second"
