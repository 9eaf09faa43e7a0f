"""Protocol readers turning chain state, read at one pinned block, into snapshot inputs.

One module per protocol; each registers its ``protocol`` name when imported (this package imports
them all). Readers import from :mod:`bondfolio.inputs` only, never from the solver, and never send
transactions.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
