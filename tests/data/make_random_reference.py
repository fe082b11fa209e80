"""Regenerate ``tests/data/random_stream_reference.json``: stream words, uniforms,
normals and phill of a few (seed, event) pairs, the reference for the numpy, torch
and C++ (``dyroot/cpp/dyroot_random.hxx``) implementations of ``dyroot.random``.

Run from the repository root: ``.venv/bin/python tests/data/make_random_reference.py``.
The words were checked against Random123's known-answer vectors first
(``tests/test_random.py::test_known_answer_vectors``).
"""

from __future__ import annotations

import json
import pathlib

from dyroot.random import event_words, noise, uniforms

CASES = [(0, 0), (1, 0), (1, 1), (12345, 2**32 - 1), (12345, 2**32), (2**64 - 1, 2**40 + 17)]


def main() -> None:
    out = []
    for seed, event in CASES:
        d = noise(seed, event, 1)
        out.append({
            "seed": seed, "event": event,
            "words": [int(x) for x in event_words(seed, event, 1)[0]],
            "uniforms": [float(x) for x in uniforms(seed, event, 1)[0]],
            "normals": [float(x) for x in d.normals[0]],
            "phill": float(d.phill[0]), "u_context": float(d.u_context[0]),
        })
    path = pathlib.Path(__file__).with_name("random_stream_reference.json")
    path.write_text(json.dumps({"layout": "dyroot.random (Philox4x32-10, tag 0xD1, dim 5)", "cases": out},
                               indent=1) + "\n")


if __name__ == "__main__":
    main()
