"""Modules imported on first use, so the command line starts without the solver stack.

``bondfolio --help``, ``schema`` and ``validate`` must start in well under half a second, and importing cvxpy
alone takes about a second (it pulls in scipy.stats). Modules that build programs keep their ``cp`` name but
bind it lazily::

    if TYPE_CHECKING:
        import cvxpy as cp
    else:
        cp = lazy_module("cvxpy", globals(), "cp")

The first attribute read imports the real module and rebinds the name in the owner's namespace, so every
later read is an ordinary global lookup. Type checkers see the real import.
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    __slots__ = ("_alias", "_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self._name)
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str, namespace: dict[str, Any], alias: str) -> Any:
    """A stand-in for ``import name as alias`` in ``namespace`` that imports on first attribute read."""
    return _LazyModule(name, namespace, alias)
