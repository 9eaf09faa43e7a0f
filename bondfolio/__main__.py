"""``python -m bondfolio``: the command line, without relying on the console script being on PATH."""

import sys

from bondfolio.cli import main

sys.exit(main())
