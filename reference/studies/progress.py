"""Progress of a long study on stderr: a tqdm bar over its steps (steps done, elapsed, time left),
as ``python -m reference.compare`` shows its tasks. Nothing is shown unless asked for."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(total: int, show: bool, desc: str) -> tqdm:
    """A bar of ``total`` steps on stderr when ``show`` (a context manager); the caller names the
    current step with ``bar.set_postfix_str`` and counts it done with ``bar.update()``. The bar
    never changes what the study computes."""
    return tqdm(total=total, desc=desc, disable=not show, file=sys.stderr, unit="step", smoothing=0)
