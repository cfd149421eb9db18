"""``python -m reference.compare``: the command line of :mod:`reference.compare.cli`."""

import sys

from .cli import main

sys.exit(main())
