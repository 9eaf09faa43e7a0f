"""The one group vocabulary: which opportunities a ``key:value`` group names.

Selectors, group caps and floors, failure sources and scenarios all name groups the same way:

- an attribute of :data:`ATTRIBUTES`: ``protocol:aave-v3``, ``chain:base``, ``asset:USDC``,
  ``kind:floating``, ``tier:yield``, ``market:<market id>``, ``id:<opportunity id>``;
- a tag key: ``oracle:chainlink`` is every opportunity tagged ``oracle:chainlink``; a tag value may
  itself contain colons (``issuer:acme:eu`` is key ``issuer``, value ``acme:eu``);
- grouping ``by = "tag"`` makes every tag label its own group.

Everything here reads opportunities through their attributes only (``id``, ``protocol``, ...,
``market_id``, ``tags``, ``kind``), so the snapshot's models can use it without an import circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from bondfolio.inputs.kinds import Kind

__all__ = ["ATTRIBUTES", "attribute_values", "group_keys", "groups", "members", "split_group", "tag_keys"]

#: Text attributes every opportunity has, usable as group keys (besides tag keys).
ATTRIBUTES: tuple[str, ...] = ("id", "protocol", "chain", "asset", "kind", "tier", "market")

#: The grouping that makes each tag label its own group.
EVERY_TAG = "tag"


def _text(value: Any) -> str:
    return str(value.value) if hasattr(value, "value") else str(value)


def attribute_values(opportunities: Sequence[Any], key: str) -> list[str]:
    """Per opportunity, its value of attribute ``key`` (one of :data:`ATTRIBUTES`) as text."""
    if key not in ATTRIBUTES:
        raise KeyError(key)
    values = list(map(attrgetter("market_id" if key == "market" else key), opportunities))
    if set(map(type, values)) <= {str}:
        return values
    # enumerations (kind, tier): each distinct member's text once (a member's ``value`` is a slow property)
    texts = {key: _text(v) for key, v in dict(zip(map(id, values), values, strict=True)).items()}
    return list(map(texts.__getitem__, map(id, values)))


def tag_keys(opportunities: Sequence[Any]) -> set[str]:
    """Keys of the ``key:value`` tags present."""
    return {t.split(":", 1)[0] for o in opportunities for t in o.tags if ":" in t}


def group_keys(opportunities: Sequence[Any]) -> list[str]:
    """Every key :func:`groups` accepts: the attributes, ``tag``, then the tag keys present."""
    return [*ATTRIBUTES, EVERY_TAG, *sorted(tag_keys(opportunities))]


def split_group(group: str) -> tuple[str, str]:
    """``"key:value"`` -> ``(key, value)``, split at the first colon (values may contain colons)."""
    key, sep, value = group.partition(":")
    if not sep or not key or not value:
        raise ValueError(f"'{group}' is not a key:value group (e.g. protocol:aave-v3, tier:yield, oracle:chainlink)")
    return key, value


def groups(opportunities: Sequence[Any], by: str) -> dict[str, np.ndarray]:
    """Members of each group when grouping by ``by`` (an attribute, a tag key, or ``tag``): group
    value -> sorted indices, groups sorted by value. With tag keys an opportunity may belong to
    several groups or to none. Raises ``KeyError`` for an unknown key."""
    found: dict[str, list[int]] = {}
    if by in ATTRIBUTES:
        return group_indices(attribute_values(opportunities, by))
    if by == EVERY_TAG:
        for i, o in enumerate(opportunities):
            for t in o.tags:
                found.setdefault(t, []).append(i)
    elif by in tag_keys(opportunities):
        prefix = by + ":"
        for i, o in enumerate(opportunities):
            for t in o.tags:
                if t.startswith(prefix):
                    found.setdefault(t[len(prefix):], []).append(i)
    else:
        raise KeyError(by)
    return {k: np.array(v, dtype=int) for k, v in sorted(found.items())}


def group_indices(values: Sequence[str]) -> dict[str, np.ndarray]:
    """Group value -> sorted indices of the entries of ``values`` equal to it, groups sorted by value (what
    :func:`groups` gives for an attribute), from one pass over the values and a stable sort of their codes."""
    codes = {value: k for k, value in enumerate(dict.fromkeys(values))}
    code = np.fromiter(map(codes.__getitem__, values), dtype=np.intp, count=len(values))
    order = np.argsort(code, kind="stable")
    parts = np.split(order, np.cumsum(np.bincount(code, minlength=len(codes)))[:-1])
    return {value: parts[codes[value]] for value in sorted(codes)}


def members(opportunities: Sequence[Any], group: str, deposits_only: bool = True) -> np.ndarray | None:
    """Boolean mask of the opportunities in ``key:value`` group ``group`` (deposits only unless
    ``deposits_only`` is false); ``None`` when the key is neither an attribute nor a tag key of any
    opportunity (an unknown key, as opposed to a known key whose value matches nothing)."""
    key, value = split_group(group)
    if key in ATTRIBUTES:
        mask = np.array([v == value for v in attribute_values(opportunities, key)], dtype=bool)
    elif key in tag_keys(opportunities):
        mask = np.array([group in o.tags for o in opportunities], dtype=bool)
    else:
        return None
    if deposits_only:
        hedge = Kind.hedge
        mask &= np.array([o.kind is not hedge for o in opportunities], dtype=bool)
    return mask
