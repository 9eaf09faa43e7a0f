"""Small helpers the audit modules share: numbers, short renderings of JSON values, leaf changes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bondfolio.inputs.base import canonical_json

__all__ = ["field_changes", "is_number", "short"]


def field_changes(a: Any, b: Any, prefix: str = "") -> dict[str, list[Any]]:
    """Leaf changes between two JSON values, by dotted path (lists of numbers summarized)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, list[Any]] = {}
        for key in [*a, *(k for k in b if k not in a)]:
            out.update(field_changes(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key)))
        return out
    if a == b:
        return {}
    if isinstance(a, list) and isinstance(b, list) and len(a) > 8:
        fa, fb = np.asarray(a, dtype=object).ravel(), np.asarray(b, dtype=object).ravel()
        count = int(np.sum(fa != fb)) if fa.shape == fb.shape else max(len(a), len(b))
        return {prefix or "value": [f"{len(a)} items", f"{count} of {len(b)} items changed"]}
    return {prefix or "value": [a, b]}


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def short(x: Any) -> str:
    text = canonical_json(x) if isinstance(x, dict | list) else (f"{x:.6g}" if is_number(x) else str(x))
    return text if len(text) <= 60 else text[:57] + "..."
