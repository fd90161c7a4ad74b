"""The variant engine: every public LARS as Algorithm 1 plus named switches.

* :mod:`~lars_ref.optim.variants.options`: :class:`LarsOptions`, the 21 switches
  (defaults: the paper), and :func:`resolve_exclusions` for name/rank exclusions.
* :mod:`~lars_ref.optim.variants.engine`: :func:`variant_step`, lines L4..L6 with
  every switch (equal to :mod:`lars_ref.optim.algorithm1` at the defaults, bit for bit).
* :mod:`~lars_ref.optim.variants.presets`: :data:`PRESETS`, one per public
  implementation (:func:`lars_ref.optim.build_preset` builds the optimizer).

Used by :class:`lars_ref.optim.LARS` (for any non-paper option), the presets and
the cross-check kit (:mod:`lars_ref.crosscheck`). Introduced in
``notebooks/04_which_lars_is_mine.ipynb``; the table is ``docs/variants.md``.
"""
from lars_ref.optim.variants.engine import decayed_gradient, variant_local_lr, variant_step
from lars_ref.optim.variants.options import (PAPER, PAPER_V3_AS_PRINTED, LarsOptions,
                                             option_names, resolve_exclusions)
from lars_ref.optim.variants.presets import PRESETS, Preset, get_preset, variants_markdown

__all__ = ["variant_step", "variant_local_lr", "decayed_gradient",
           "LarsOptions", "PAPER", "PAPER_V3_AS_PRINTED", "option_names", "resolve_exclusions",
           "PRESETS", "Preset", "get_preset", "variants_markdown"]
