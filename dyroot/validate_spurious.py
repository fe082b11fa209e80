r"""The spurious signal with its uncertainty split: template statistics vs model.

Orchestration for ``dyroot validate`` (RooFit is reached only through
:mod:`dyroot.scan`, the spurious-signal scan; this module never imports ROOT). For
each category, with the background function the scan chooses (or a given one):

* **template statistics**: :math:`S_\mathrm{spur}` from the nominal template and its
  :math:`\Delta_\mathrm{MC}`, the uncertainty of the fitted signal that comes from the
  template's own statistics (it shrinks like :math:`1/\sqrt{N_\mathrm{gen}}`);
* **model**: the spread of :math:`S_\mathrm{spur}` over the templates of the ensemble
  members (each member generating with its own key), with their mean squared
  :math:`\Delta_\mathrm{MC}` subtracted:
  :math:`\sigma^2_\mathrm{model} = \mathrm{Var}_k(S_k) - \overline{\Delta^2_{\mathrm{MC},k}}`
  (it does not shrink with :math:`N_\mathrm{gen}`);
* **training-size sample**: :math:`S_\mathrm{spur} \pm \Delta` from the histogram of
  the training events alone (what one would have without the flow).

All yields are scaled to the same luminosity (``ValidationConfig.lumi_fb``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["spurious_split"]


def spurious_split(bundle: Any, members: list[Any], templates: Any, train: dict[str, Any] | None,
                   ref: dict[str, Any], scheme: Any, sel: Any, cfg: Any, out: dict[str, Any],
                   notes: list[str]) -> None:
    """Fill ``out`` with the spurious-signal uncertainty split (see the module docstring).

    Until the scan's API is available (``dyroot.scan``), the part is skipped with a note.
    """
    import importlib.util

    if importlib.util.find_spec("dyroot.scan") is None:
        out["skipped"] = "the spurious-signal scan (dyroot.scan) is not available in this installation"
        notes.append("spurious: skipped, dyroot.scan is not available")
        return
    out["skipped"] = "the uncertainty split is not wired to dyroot.scan yet"
