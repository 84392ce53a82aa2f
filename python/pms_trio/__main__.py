"""``python -m pms_trio`` is the ``pms-trio`` command."""

import sys

from .cli import main

sys.exit(main())
