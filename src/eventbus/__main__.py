"""``python -m eventbus``: the ``eventbus`` command."""

import sys

from .cli import main

sys.exit(main())
