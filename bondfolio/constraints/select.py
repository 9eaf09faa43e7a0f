"""Selecting opportunities by id, attribute or tag, for constraints that apply to some of them."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BeforeValidator

from bondfolio.errors import InputError
from bondfolio.inputs.base import StrictModel
from bondfolio.inputs.kinds import Kind
from bondfolio.inputs.universe import Universe

__all__ = ["Selector"]


def _listify(value: object) -> object:
    # one name or a list of names; a tuple either way (strict mode after a before-validator)
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


def _kinds(value: object) -> object:
    # strict mode after a before-validator takes no strings for enums: convert here (ValueError names it)
    listed = _listify(value)
    if isinstance(listed, tuple):
        return tuple(Kind(v) if isinstance(v, str) else v for v in listed)
    return listed


Names = Annotated[tuple[str, ...] | None, BeforeValidator(_listify)]
Kinds = Annotated[tuple[Kind, ...] | None, BeforeValidator(_kinds)]


class Selector(StrictModel):
    """Which opportunities a constraint applies to.

    Fields combine with AND; the values within one field with OR. An empty selector selects every
    opportunity. Every value must exist in the snapshot: a typo is an error, never an empty selection.

    Examples (TOML): ``select = { protocol = "aave-v3" }``,
    ``select = { tier = ["yield"], tags = ["oracle:chainlink"] }``, ``select = { ids = ["a", "b"] }``.
    """

    ids: Names = None
    protocol: Names = None
    chain: Names = None
    asset: Names = None
    kind: Kinds = None
    """Opportunity kinds (:class:`~bondfolio.inputs.kinds.Kind`)."""
    tier: Names = None
    market: Names = None
    tags: Names = None
    """Any of these tag labels (``key:value`` or plain)."""
    exclude: Names = None
    """Ids removed from the selection."""

    def mask(self, u: Universe, owner: str) -> np.ndarray:
        """Boolean mask over ``u``'s opportunities. ``owner`` names the constraint in errors."""
        selected = np.ones(u.n, dtype=bool)
        problems: list[str] = []
        fields = {"ids": "id", "protocol": "protocol", "chain": "chain", "asset": "asset", "kind": "kind",
                  "tier": "tier", "market": "market"}
        for key, attribute in fields.items():
            wanted = getattr(self, key)
            if wanted is None:
                continue
            values = u.attribute(attribute)
            known = set(values)
            for w in wanted:
                if w not in known:
                    problems.append(_unknown(owner, attribute, w, known))
            selected &= np.isin(np.array(values, dtype=object), np.array(list(wanted), dtype=object))
        if self.tags is not None:
            for t in self.tags:
                if t not in u.all_tags:
                    problems.append(_unknown(owner, "tag", t, u.all_tags))
            wanted_tags = set(self.tags)
            selected &= np.array([bool(wanted_tags.intersection(o.tags)) for o in u.snapshot.opportunities])
        if self.exclude is not None:
            for x in self.exclude:
                i = u.index_of(x)
                if i is None:
                    problems.append(_unknown(owner, "id", x, set(u.ids)))
                else:
                    selected[i] = False
        InputError.collect(problems)
        return selected

    @property
    def empty(self) -> bool:
        """True when nothing narrows the selection."""
        return all(getattr(self, f) is None for f in type(self).model_fields)


def _unknown(owner: str, attribute: str, value: str, known: set[str]) -> str:
    shown = sorted(known)
    listing = ", ".join(shown[:12]) + (f", ... ({len(shown)} in all)" if len(shown) > 12 else "")
    return (f"constraint '{owner}' names {attribute} '{value}', which no opportunity of the snapshot has "
            f"(known: {listing}): fix the name or drop it")
