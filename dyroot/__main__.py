"""``python -m dyroot`` is the ``dyroot`` command."""

import sys

from .cli import main

sys.exit(main())
