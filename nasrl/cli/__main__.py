"""``python -m nasrl.cli …``, the same as the ``nasrl`` command."""

import sys

from nasrl.cli import main

sys.exit(main())
