"""``python -m simrouter`` runs the ``simrouter`` command."""

import sys

from .cli import main

sys.exit(main())
