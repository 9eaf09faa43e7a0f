"""Decision records: the JSON a decision is written as, sealed by its own sha256, and read back.

A record holds everything needed to reproduce the decision: the canonical inputs (snapshot, policy,
holdings) embedded under ``inputs`` (or, for records written with ``embed_inputs=False``, only their
sha256 in ``provenance``, so the files must be supplied and are checked against it), the software
versions, the solver order and options, and the answer itself.

``record_sha256`` is the sha256 of the canonical JSON (:func:`~bondfolio.inputs.base.canonical_json`)
of the record without ``timing`` (wall-clock seconds, the only run-dependent numbers) and without
itself. :func:`load_decision` recomputes it and refuses a record whose content does not match, so an
edited or truncated record is never replayed or explained as if it were the original.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bondfolio.errors import InputError
from bondfolio.inputs.base import canonical_json, read_source, sha256_hex
from bondfolio.inputs.holdings import Holdings, load_holdings
from bondfolio.inputs.policy import Policy, load_policy
from bondfolio.inputs.snapshot import Snapshot, load_snapshot

__all__ = ["HASH_KEY", "UNHASHED", "DecisionRecord", "hashed_part", "load_decision", "record_sha256", "seal"]

#: The key holding the record's own hash.
HASH_KEY = "record_sha256"

#: Top-level keys left out of the hash: wall-clock timings and the hash itself.
UNHASHED: tuple[str, ...] = ("timing", HASH_KEY)

#: Where each embedded input's sha256 lives in ``provenance``.
_INPUT_HASH = {"snapshot": "snapshot_sha256", "policy": "policy_sha256", "holdings": "holdings_sha256"}


def hashed_part(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record without :data:`UNHASHED` keys: what the hash covers and what replays compare."""
    return {k: v for k, v in record.items() if k not in UNHASHED}


def record_sha256(record: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of :func:`hashed_part`."""
    return sha256_hex(canonical_json(hashed_part(record)))


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with ``record_sha256`` set, placed right after ``schema``."""
    digest = record_sha256(record)
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == HASH_KEY:
            continue
        out[key] = value
        if key == "schema":
            out[HASH_KEY] = digest
    if HASH_KEY not in out:
        out[HASH_KEY] = digest
    return out


def input_sha256(data: Any) -> str | None:
    """sha256 of one canonical input as it is embedded (``None`` for absent holdings)."""
    return None if data is None else sha256_hex(canonical_json(data))


class _Mismatch(InputError):
    """An input that is missing from a record or does not match the sha256 it names."""


class DecisionRecord:
    """A decision record read from JSON and verified (see :func:`load_decision`)."""

    def __init__(self, data: dict[str, Any], label: str) -> None:
        self.data = data
        self.label = label

    @property
    def sha256(self) -> str:
        return str(self.data[HASH_KEY])

    @property
    def policy_name(self) -> str:
        return str(self.data.get("policy", ""))

    @property
    def embedded(self) -> bool:
        """Whether the inputs are embedded (else they must be passed to :meth:`inputs`)."""
        return isinstance(self.data.get("inputs"), dict)

    @property
    def weights(self) -> pd.Series:
        """Target weights by opportunity id, as recorded."""
        rows = self.data["allocation"]
        return pd.Series([float(a["weight"]) for a in rows], index=pd.Index([a["id"] for a in rows], name="id"),
                         name="weight")

    @property
    def cash(self) -> float:
        return float(self.data["cash"]["weight"])

    @property
    def nav(self) -> float:
        return float(self.data["metrics"]["nav"])

    def weight_vector(self, ids: list[str]) -> np.ndarray:
        """Recorded weights in the order of ``ids`` (which must be the record's own ids)."""
        w = self.weights
        missing = [i for i in ids if i not in w.index]
        if missing or len(ids) != len(w):
            raise InputError(f"{self.label}: its allocation does not cover the snapshot's opportunities "
                             f"(missing {missing[:5]})")
        return w.loc[ids].to_numpy(dtype=float)

    def inputs(self, snapshot: Any = None, policy: Any = None, holdings: Any = None
               ) -> tuple[Snapshot, Policy, Holdings | None]:
        """The validated inputs the decision was made from.

        Embedded inputs are used unless one is given here; any input given (a model, a path, JSON
        text or a mapping) must hash to the sha256 the record names, so a record is never explained
        or replayed against inputs other than its own.
        """
        given = {"snapshot": snapshot, "policy": policy, "holdings": holdings}
        out: dict[str, Any] = {}
        problems = []
        for key, source in given.items():
            try:
                out[key] = self.input(key, source)
            except _Mismatch as exc:
                problems.append(str(exc))
        InputError.collect(problems, self.label)
        return out["snapshot"], out["policy"], out["holdings"]

    def input(self, key: str, source: Any = None) -> Any:
        """One input (``snapshot``, ``policy`` or ``holdings``), embedded or given, checked against
        the sha256 the record names (see :meth:`inputs`); ``None`` for absent holdings."""
        expected = self.data["provenance"].get(_INPUT_HASH[key])
        embedded: dict[str, Any] = self.data["inputs"] if self.embedded else {}
        if source is None:
            if key not in embedded:
                if key == "holdings" and expected is None:
                    return None
                raise _Mismatch(f"the {key} is not embedded (record written without inputs): pass the {key} file it "
                                f"was made from (sha256 {str(expected)[:16]}…)")
            if embedded[key] is None:
                return None
        loader = {"snapshot": load_snapshot, "policy": load_policy, "holdings": load_holdings}[key]
        model = loader(embedded[key] if source is None else source)
        actual = input_sha256(model.model_dump(mode="json", by_alias=True))
        if actual != expected:
            where = "embedded" if source is None else "given"
            raise _Mismatch(f"the {where} {key}'s sha256 is {str(actual)[:16]}…, but the decision was made from "
                            f"{str(expected)[:16]}…: pass the {key} the decision was made from")
        return model

    def constraint_specs(self) -> list[dict[str, Any]]:
        """The effective constraints (the policy's plus the implied ones), as recorded."""
        return list(self.data["provenance"]["effective_policy"]["constraints"])


def load_decision(source: DecisionRecord | str | Path | Mapping[str, Any], verify: bool = True) -> DecisionRecord:
    """Read a decision record (a path, JSON text or a mapping) and verify its ``record_sha256``.

    Raises
    ------
    InputError
        Not a decision record, an unknown schema, no hash, or a hash that does not match the content.
    """
    from bondfolio.solver.decision import DECISION_SCHEMA

    if isinstance(source, DecisionRecord):
        return source
    raw, label = read_source(source if not isinstance(source, Mapping) else dict(source), "decision")
    if not isinstance(raw, dict) or "allocation" not in raw or "provenance" not in raw:
        raise InputError(f"{label} is not a bondfolio decision record (no 'allocation' and 'provenance')")
    if raw.get("schema") != DECISION_SCHEMA:
        raise InputError(f"{label} has schema {raw.get('schema')!r}; this bondfolio reads {DECISION_SCHEMA!r}")
    if verify:
        stored = raw.get(HASH_KEY)
        if not isinstance(stored, str):
            raise InputError(f"{label} has no '{HASH_KEY}': it was not written by 'bondfolio allocate' or was "
                             "stripped; it cannot be verified")
        actual = record_sha256(raw)
        if actual != stored:
            raise InputError(f"{label}: '{HASH_KEY}' is {stored[:16]}… but the content hashes to {actual[:16]}…: "
                             "the record was edited or damaged after it was written, so it is not trusted")
    return DecisionRecord(raw, label)


def dump_record(record: Mapping[str, Any], indent: int | None = 2) -> str:
    """JSON text of a record (finite numbers only, trailing newline)."""
    return json.dumps(record, indent=indent, allow_nan=False, ensure_ascii=False) + "\n"
