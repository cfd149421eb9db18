"""Hypothesis strategies for the tests: the public ones of :mod:`reference.testing`."""

import numpy as np

from reference.testing import bqms as small_bqms  # noqa: F401
from reference.testing import layers as small_layers  # noqa: F401
from reference.testing import psd_bqms  # noqa: F401


def all_states(n):
    """All 2^n binary vectors as int8 rows."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)
