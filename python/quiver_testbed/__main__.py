"""Command line: python -m quiver_testbed generate ..."""

import sys

from .cli import main

sys.exit(main())
