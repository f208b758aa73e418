"""``python -m asyncrawl``: the same as the ``asyncrawl`` command."""

import sys

from .cli import main

sys.exit(main())
