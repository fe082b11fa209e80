r"""A generic, section-based report: one HTML page with PNG figures, and JSON of everything.

Boundary module for the report folder (matplotlib for the PNGs, lazily; never ROOT).
Any stage can build a :class:`Report` of :class:`Section` s, each holding text, key
numbers (with their uncertainties and units), tables, figures and a verdict;
:meth:`Report.write` writes, atomically (a temporary folder in the same place,
then a rename)::

    OUTPUT/
      index.html           the page: contents, key numbers, then every section
      report.json          everything on the page, figures' data included
      figures/<name>.png   each figure
      figures/<name>.json  the data behind each figure (bins, values, errors)

``dyroot validate`` writes one; the end-to-end report of ``dyroot run`` reuses the
same writer, with one section per stage.

Example:
    >>> import tempfile, pathlib
    >>> rep = Report("Demo", subtitle="a doctest")
    >>> sec = rep.section("Amplification", "G measured on toys.")
    >>> sec.number("G", 4.2, 0.3, key="gain")
    >>> sec.verdict(True, "G > 1")
    >>> sec.table(["category", "G"], [["inclusive", "4.2 ± 0.3"]])
    >>> out = rep.write(pathlib.Path(tempfile.mkdtemp()) / "report")
    >>> sorted(p.name for p in out.iterdir())
    ['figures', 'index.html', 'report.json']
    >>> format_value(0.012345, 0.00067)
    '0.01235 ± 0.00067'
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ._jsonutil import to_jsonable
from .exceptions import OutputExistsError

__all__ = ["Report", "Section", "KeyNumber", "format_value", "check_output"]


def format_value(value: float | None, error: float | Sequence[float] | None = None, unit: str = "") -> str:
    """Format a number with its uncertainty, PDG-style (two significant digits on the error).

    Args:
        value: the central value (``None`` or NaN prints ``n/a``).
        error: a symmetric error, or ``(minus, plus)`` for an asymmetric one.
        unit: appended after a space.

    Returns:
        e.g. ``"1.234 ± 0.056 GeV"``, ``"12 +3.4 -2.1"``, ``"> 1e+06"`` style is left to callers.

    Example:
        >>> format_value(1234.5678, 56.7)
        '1235 ± 57'
        >>> format_value(3.0, (0.25, 0.5), "GeV")
        '3.00 -0.25 +0.50 GeV'
        >>> format_value(float("inf"))
        'inf'
    """
    import math

    suffix = f" {unit}" if unit else ""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a" + suffix
    v = float(value)
    if not math.isfinite(v):
        return ("inf" if v > 0 else "-inf") + suffix
    errs: list[float] = []
    if error is not None:
        errs = [abs(float(e)) for e in (error if isinstance(error, (list, tuple)) else [error])]
    finite = [e for e in errs if math.isfinite(e) and e > 0]
    if not finite:
        text = f"{v:.4g}"
        if errs and any(not math.isfinite(e) for e in errs):
            text += " (+inf)" if len(errs) == 2 and not math.isfinite(errs[1]) else " ± inf"
        return text + suffix
    e_min = min(finite)
    digits = max(0, 1 - int(math.floor(math.log10(e_min))))
    if abs(v) >= 1e6 or (abs(v) < 1e-4 and v != 0) or digits > 8:
        exp = int(math.floor(math.log10(abs(v)))) if v != 0 else int(math.floor(math.log10(e_min)))
        scale = 10.0**exp
        inner = format_value(v / scale, [e / scale for e in errs] if len(errs) == 2 else errs[0] / scale)
        return f"({inner})e{exp:+d}{suffix}"
    fmt = f"{{:.{digits}f}}"
    if len(errs) == 2:
        lo, hi = (fmt.format(e) if math.isfinite(e) else "inf" for e in errs)
        return f"{fmt.format(v)} -{lo} +{hi}{suffix}"
    return f"{fmt.format(v)} ± {fmt.format(errs[0])}{suffix}"


@dataclass
class KeyNumber:
    """A number worth a line in the report's summary.

    Attributes:
        label: what it is, in words (``"G for m_mumu, inclusive"``).
        value: the value.
        error: its uncertainty (symmetric, or ``(minus, plus)``), or ``None``.
        unit: its unit (``"GeV"``, ``"events"``...).
        note: how it was obtained, or a caveat.
        key: a stable machine name for the JSON (default: slug of the label).
    """

    label: str
    value: Any
    error: Any = None
    unit: str = ""
    note: str = ""
    key: str = ""

    def text(self) -> str:
        """The formatted value (see :func:`format_value`), or ``str(value)`` for non-numbers."""
        if isinstance(self.value, (int, float)) and not isinstance(self.value, bool):
            return format_value(self.value, self.error, self.unit)
        return f"{self.value}{' ' + self.unit if self.unit else ''}"


@dataclass
class _Figure:
    name: str
    caption: str
    data: dict[str, Any]
    png: bytes


@dataclass
class Section:
    """One section of a :class:`Report` (add content with its methods, in page order).

    Attributes:
        title: the heading.
        paragraphs: text paragraphs (plain text; ``code`` in backticks is shown as code).
        numbers: the key numbers.
        tables: ``(header, rows, caption)`` triples.
        figures: rendered figures with their data.
        status: ``True`` (pass), ``False`` (fail) or ``None`` (no verdict).
        status_text: the verdict in words.
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    numbers: list[KeyNumber] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[Any]], str]] = field(default_factory=list)
    figures: list[_Figure] = field(default_factory=list)
    status: bool | None = None
    status_text: str = ""
    _names: set[str] = field(default_factory=set, repr=False)

    def text(self, paragraph: str) -> None:
        """Add a paragraph."""
        self.paragraphs.append(paragraph)

    def number(self, label: str, value: Any, error: Any = None, unit: str = "", *, note: str = "", key: str = "") -> None:
        """Add a key number (see :class:`KeyNumber`)."""
        self.numbers.append(KeyNumber(label, value, error, unit, note, key or _slug(label)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> None:
        """Add a table (cells are printed with ``str``)."""
        self.tables.append((list(header), [list(r) for r in rows], caption))

    def verdict(self, ok: bool | None, text: str = "") -> None:
        """Set the section's verdict: pass (True), fail (False) or informative (None)."""
        self.status, self.status_text = ok, text

    def figure(self, name: str, fig: Any, data: dict[str, Any] | None = None, caption: str = "", *, dpi: int = 110) -> None:
        """Render a matplotlib figure to PNG now (and free it); keep its data for the JSON.

        Args:
            name: a file-name-safe identifier, unique in the report (made safe if not).
            fig: a ``matplotlib.figure.Figure``.
            data: the numbers behind the figure (JSON-able after :func:`to_jsonable`).
            caption: what the figure shows, readable without the code.
            dpi: resolution of the PNG.
        """
        safe = _slug(name)
        base, k = safe, 2
        while safe in self._names:
            safe, k = f"{base}-{k}", k + 1
        self._names.add(safe)
        from .figures import style

        buf = io.BytesIO()
        with style():  # text is laid out at draw time: draw with the rc the figure was made with
            fig.savefig(buf, format="png", dpi=dpi)
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:  # a pyplot-managed figure would otherwise stay alive
            plt.close(fig)
        self.figures.append(_Figure(safe, caption, to_jsonable(data or {}), buf.getvalue()))

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON-ready data (figures by name, data included)."""
        return {
            "title": self.title,
            "text": list(self.paragraphs),
            "verdict": {"ok": self.status, "text": self.status_text},
            "numbers": [to_jsonable({"label": n.label, "key": n.key, "value": n.value, "error": n.error,
                                     "unit": n.unit, "note": n.note, "text": n.text()}) for n in self.numbers],
            "tables": [{"header": h, "rows": to_jsonable([[str(c) for c in r] for r in rows]), "caption": c}
                       for h, rows, c in self.tables],
            "figures": [{"name": f.name, "png": f"figures/{f.name}.png", "json": f"figures/{f.name}.json",
                         "caption": f.caption, "data": f.data} for f in self.figures],
        }


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip()).strip("_.")
    return s[:80] or "item"


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse an existing output folder unless ``force`` (call it before long work).

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
    """
    p = Path(path)
    if p.exists() and not force:
        msg = f"{p} exists already; choose another output folder or pass --force (force=True) to replace it"
        raise OutputExistsError(msg)
    return p


class Report:
    """An HTML + JSON report made of sections.

    Args:
        title: the page title.
        subtitle: a line under it (e.g. the command that made it).
        meta: provenance shown at the end and stored in the JSON (versions, inputs, hashes).
    """

    def __init__(self, title: str, subtitle: str = "", meta: dict[str, Any] | None = None) -> None:
        self.title, self.subtitle = title, subtitle
        self.meta: dict[str, Any] = dict(meta or {})
        self.sections: list[Section] = []
        self.attachments: dict[str, Any] = {}
        self.created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def section(self, title: str, text: str = "") -> Section:
        """Append a new section (with an optional first paragraph) and return it."""
        sec = Section(title)
        if text:
            sec.text(text)
        self.add(sec)
        return sec

    def add(self, section: Section) -> None:
        """Append an existing section (e.g. one made by another stage); figure names stay unique."""
        taken = {f.name for s in self.sections for f in s.figures}
        for f in section.figures:
            base, k = f.name, 2
            while f.name in taken:
                f.name, k = f"{base}-{k}", k + 1
            taken.add(f.name)
        self.sections.append(section)

    def attach(self, filename: str, data: Any) -> None:
        """Write ``data`` as JSON under ``filename`` in the report folder (e.g. the full results).

        Raises:
            ValueError: for a name that is not a plain ``*.json`` file name.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.json", filename) or filename in ("report.json",):
            msg = f"attachment name {filename!r}: use a plain file name ending in .json, other than report.json"
            raise ValueError(msg)
        self.attachments[filename] = data

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready data."""
        return {"title": self.title, "subtitle": self.subtitle, "created": self.created,
                "meta": to_jsonable(self.meta), "sections": [s.to_dict() for s in self.sections]}

    def write(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the report folder atomically.

        Args:
            path: the output folder (created; its parent must be writable).
            force: replace an existing folder.

        Returns:
            The folder's path (``index.html`` inside it is the page).

        Raises:
            OutputExistsError: ``path`` exists and ``force`` is False.
        """
        out = check_output(path, force=force)
        parent = out.parent if str(out.parent) else Path(".")
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        try:
            (tmp / "figures").mkdir()
            data = self.to_dict()
            for sec, sdata in zip(self.sections, data["sections"]):
                for fig in sec.figures:
                    (tmp / "figures" / f"{fig.name}.png").write_bytes(fig.png)
                    blob = {"name": fig.name, "section": sec.title, "caption": fig.caption, "data": fig.data}
                    (tmp / "figures" / f"{fig.name}.json").write_text(json.dumps(blob, indent=1, allow_nan=False))
            (tmp / "report.json").write_text(json.dumps(data, indent=1, allow_nan=False))
            for name, blob in self.attachments.items():
                (tmp / name).write_text(json.dumps(to_jsonable(blob), indent=1, allow_nan=False))
            (tmp / "index.html").write_text(self._html(data))
            os.chmod(tmp, 0o755)
            if out.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
                os.replace(out, trash / "old")
                os.replace(tmp, out)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    # ---------------------------------------------------------------------------------- HTML
    def _html(self, data: dict[str, Any]) -> str:
        esc = html.escape
        parts = [_HEAD.format(title=esc(self.title)), f"<h1>{esc(self.title)}</h1>"]
        if self.subtitle:
            parts.append(f"<p class='sub'>{_inline(self.subtitle)}</p>")
        parts.append(f"<p class='sub'>Written {esc(self.created)}</p>")
        parts.append("<nav><ol>" + "".join(
            f"<li><a href='#s{i}'>{esc(s.title)}</a> {_badge(s.status)}</li>" for i, s in enumerate(self.sections))
            + "</ol></nav>")
        keys = [(s, n) for s in self.sections for n in s.numbers]
        if keys:
            parts.append("<h2>Key numbers</h2><table class='keys'><tr><th>section</th><th>quantity</th>"
                         "<th>value</th><th>note</th></tr>")
            parts += [f"<tr><td>{esc(s.title)}</td><td>{_inline(n.label)}</td><td class='num'>{esc(n.text())}</td>"
                      f"<td>{_inline(n.note)}</td></tr>" for s, n in keys]
            parts.append("</table>")
        for i, (sec, sdata) in enumerate(zip(self.sections, data["sections"])):
            parts.append(f"<section id='s{i}'><h2>{esc(sec.title)} {_badge(sec.status)}</h2>")
            if sec.status_text:
                parts.append(f"<p class='verdict {_cls(sec.status)}'>{_inline(sec.status_text)}</p>")
            parts += [f"<p>{_inline(p)}</p>" for p in sec.paragraphs]
            if sec.numbers:
                parts.append("<table class='keys'>" + "".join(
                    f"<tr><td>{_inline(n.label)}</td><td class='num'>{esc(n.text())}</td><td>{_inline(n.note)}</td></tr>"
                    for n in sec.numbers) + "</table>")
            for header, rows, caption in sec.tables:
                parts.append("<table>" + (f"<caption>{_inline(caption)}</caption>" if caption else "")
                             + "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>"
                             + "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                             + "</table>")
            for fig in sdata["figures"]:
                parts.append(f"<figure><a href='{fig['png']}'><img src='{fig['png']}' alt='{esc(fig['name'])}'></a>"
                             f"<figcaption>{_inline(fig['caption'])} <a href='{fig['json']}'>[data]</a></figcaption>"
                             "</figure>")
            parts.append("</section>")
        if self.meta:
            parts.append("<h2>Provenance</h2><pre>" + esc(json.dumps(to_jsonable(self.meta), indent=1,
                                                                  sort_keys=True)) + "</pre>")
        extra = "".join(f", <a href='{n}'>{n}</a>" for n in self.attachments)
        parts.append("<p class='sub'>Every figure's numbers are in <a href='report.json'>report.json</a> and "
                     f"<code>figures/*.json</code>{extra}.</p></body></html>")
        return "\n".join(parts)


def _inline(text: str) -> str:
    """Escape text; `code` becomes <code>code</code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def _cls(ok: bool | None) -> str:
    return "pass" if ok is True else "fail" if ok is False else "info"


def _badge(ok: bool | None) -> str:
    if ok is None:
        return ""
    return f"<span class='badge {_cls(ok)}'>{'PASS' if ok else 'FAIL'}</span>"


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: "Helvetica Neue", Arial, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }}
.sub {{ color: #666; margin-top: 0.2em; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }} td.num {{ font-family: "DejaVu Sans Mono", monospace; white-space: nowrap; }}
caption {{ caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; }}
figure {{ display: inline-block; margin: 0.6em 1em 0.6em 0; max-width: 520px; vertical-align: top; }}
figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 0.88em; color: #444; }}
.badge {{ font-size: 0.6em; padding: 0.15em 0.5em; border-radius: 0.3em; color: white; vertical-align: middle; }}
.badge.pass {{ background: #2e7d32; }} .badge.fail {{ background: #c62828; }}
p.verdict {{ font-weight: bold; }} p.verdict.pass {{ color: #2e7d32; }} p.verdict.fail {{ color: #c62828; }}
pre {{ background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }}
code {{ background: #f2f2f2; padding: 0 0.2em; }}
</style></head><body>"""
