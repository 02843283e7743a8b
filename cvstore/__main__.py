"""``python -m cvstore``: the same as the ``cvstore`` command."""

import sys

from cvstore.cli import main

sys.exit(main())
