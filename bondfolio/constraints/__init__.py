"""Constraint families, one per module; importing this package registers every ``kind``.

Modules are discovered, so a new family is one new file here (plus its test).
"""

from __future__ import annotations

import importlib
import pkgutil

from bondfolio.constraints.base import Compiled, Constraint, ParamSet, RowResult, Rows
from bondfolio.constraints.select import Selector
from bondfolio.constraints.variables import Point, Vars

__all__ = ["Compiled", "Constraint", "ParamSet", "Point", "RowResult", "Rows", "Selector", "Vars"]

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
