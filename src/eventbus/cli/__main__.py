"""``python -m eventbus.cli``: the ``eventbus`` command."""

import sys

from . import main

sys.exit(main())
