"""The decision record: one typed, frozen model of what a decision is written as, sealed by its own sha256.

A record holds everything needed to reproduce the decision: the canonical inputs (snapshot, policy,
holdings) embedded under ``inputs`` (or, for records written with ``embed_inputs=False``, only their
sha256 in ``provenance``, so the files must be supplied and are checked against it), the software
versions, the solver order and options, and the answer itself.

``record_sha256`` is the sha256 of the canonical JSON (:func:`~bondfolio.inputs.base.canonical_json`)
of the record without ``timing`` (wall-clock seconds, the only run-dependent numbers) and without
itself. :func:`load_decision` recomputes it from the file's own JSON and refuses a record whose
content does not match, then reads it into :class:`DecisionRecord` and checks that the typed model
reproduces the sealed content exactly, so an edited or truncated record is never replayed or explained
as if it were the original. ``bondfolio schema decision`` prints the JSON Schema of the format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from bondfolio.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
from bondfolio.inputs.base import (
    JsonDocument,
    OmitUnset,
    canonical_json,
    canonical_object,
    collector_paused,
    read_source,
    sha256_hex,
)
from bondfolio.inputs.holdings import Holdings, load_holdings
from bondfolio.inputs.jsontext import dumps
from bondfolio.inputs.policy import Policy, load_policy
from bondfolio.inputs.snapshot import Snapshot, load_snapshot

__all__ = ["DECISION_SCHEMA", "HASH_KEY", "UNHASHED", "AllocationRow", "CVaRMethod", "CheckReport", "ConstraintRow",
           "DecisionRecord", "Metrics", "Provenance", "dump_record", "hashed_part", "input_sha256", "load_decision",
           "record_sha256"]

#: Schema id of the decision record format.
DECISION_SCHEMA = "bondfolio.decision/1"

#: The key holding the record's own hash.
HASH_KEY = "record_sha256"

#: Top-level keys left out of the hash: wall-clock timings and the hash itself.
UNHASHED: tuple[str, ...] = ("timing", HASH_KEY)

#: Optional top-level parts, absent (not null) when they do not apply.
_OPTIONAL = ("rate_impact", "trade_choice", "flow", "inputs")

#: Where each embedded input's sha256 lives in ``provenance``.
_INPUT_HASH = {"snapshot": "snapshot_sha256", "policy": "policy_sha256", "holdings": "holdings_sha256"}


def hashed_part(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record without :data:`UNHASHED` keys: what the hash covers and what replays compare."""
    return {k: v for k, v in record.items() if k not in UNHASHED}


def record_sha256(record: Mapping[str, Any], *, finite: bool = False, inputs_text: str | None = None) -> str:
    """sha256 of the canonical JSON of :func:`hashed_part`.

    ``finite`` says the record holds no NaN or infinity (a JSON-mode dump), so the fast encoder may write
    the text (:func:`~bondfolio.inputs.base.canonical_json`). ``inputs_text``, when given, is the
    canonical text of ``record["inputs"]`` already made (for the input hashes), used instead of making
    it again."""
    part = hashed_part(record)
    if inputs_text is None or "inputs" not in part:
        return sha256_hex(canonical_json(part, finite=finite))
    members = {key: canonical_json(value, finite=finite) for key, value in part.items() if key != "inputs"}
    return sha256_hex(canonical_object({**members, "inputs": inputs_text}))


def input_sha256(data: Any) -> str | None:
    """sha256 of one canonical input as it is embedded (``None`` for absent holdings): ``data`` is the
    input's model dumped in JSON mode."""
    return None if data is None else sha256_hex(canonical_json(data, finite=True))


# ---------------------------------------------------------------------------------------------- parts
class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)


class AllocationRow(_Part):
    """One opportunity of the allocation. Weights are fractions of NAV, amounts base currency."""

    id: str
    protocol: str
    chain: str
    asset: str
    kind: str
    tier: str
    apy: float
    """APY after our trade (on the exact rate curve where one is modelled), decimal."""
    apy_before: float
    """APY at the snapshot, before our trade, decimal."""
    duration: float
    """Years."""
    risk_score: float
    weight: float
    amount: float
    tokens: float
    """Target position in tokens (``amount / price``)."""
    current_weight: float
    current_amount: float
    trade_amount: float
    """Target minus current amount, base currency (positive buys)."""
    trade_tokens: float


class CashRow(_Part):
    """Idle cash, target and current."""

    weight: float
    amount: float
    current_weight: float
    current_amount: float


class Trade(_Part):
    """A trade of the trade list (round-off below ``TRADE_EPSILON`` of NAV left out)."""

    id: str
    side: str
    """``buy`` or ``sell``."""
    amount: float
    """Base currency, signed."""
    tokens: float


class CashFlow(_Part):
    """An external cash flow the decision assumes: the policy's ``nav`` is not the holdings' worth, so
    the difference is a deposit (more NAV than held) or a redemption (less), in base currency."""

    kind: Literal["deposit", "redemption"]
    amount: float
    """Signed: positive for a deposit, negative for a redemption."""
    holdings_worth: float
    nav: float


class Metrics(OmitUnset, _Part):
    """Portfolio numbers recomputed with numpy from the weights (fractions of NAV and decimals)."""

    nav: float
    expected_apy: float
    volatility: float
    duration: float
    risk_score: float
    cash_weight: float
    invested_weight: float
    hedge_notional: float
    hedge_carry: float
    margin_posted: float
    margin_required: float
    expected_failure_loss: float
    penalties: float
    liquidity_buffer: dict[str, float]
    """Withdrawable within each horizon (``"1d"``...), fraction of NAV."""
    turnover: float
    trading_cost: float
    fixed_cost: float | None = None
    """Fixed costs (gas) of the traded positions, fraction of NAV (policies with ``[execution]``)."""
    slippage_cost: float
    objective: float
    """The objective at the answer, evaluated in numpy (APY units)."""

    omit_when_none = ("fixed_cost",)
    solver_objective: float
    """The objective as the solver reported it (informational)."""


class ConstraintRow(_Part):
    """One constraint row: value, bounds, slack, binding flag and dual."""

    constraint: str
    """The family's label (``ConstraintSpec.label``)."""
    kind: str
    row: str
    unit: str
    value: float
    lower: float | None
    upper: float | None
    slack: float | None
    """Distance to the nearer bound; ``None`` for a row with no finite bound (a ``cvar`` held by its
    penalty alone is reported, not limited)."""
    binding: bool
    dual: float | None
    """d(objective)/d(bound) per unit of the bound (APY decimal); ``None`` when the solver gave none."""


class Violation(_Part):
    constraint: str
    row: str
    violation: float


class CheckReport(_Part):
    """The independent numpy check of every row."""

    passed: bool
    tolerance: float
    rows_checked: int
    max_violation: float
    worst: Violation | None
    violations: list[Violation]


class AttemptRow(_Part):
    solver: str
    status: str
    accepted: bool
    detail: str


class CVaRMethod(OmitUnset, _Part):
    """How one ``cvar`` constraint's scenarios entered the solve."""

    constraint: str
    """The constraint's label."""
    method: Literal["full", "aggregated"]
    """``full``: the Rockafellar-Uryasev LP inside the compiled program (a variable and a row per
    scenario); ``aggregated``: out of it, as groups of scenarios refined until the bound was exact at the
    answer (:mod:`bondfolio.solver.cvar_cuts`)."""
    scenarios: int
    master_solves: int | None = None
    """Aggregated: how many times the master program (the compiled program plus the group rows) was solved."""
    groups: int | None = None
    """Aggregated: groups of scenarios (rows) in the last master."""
    gap: float | None = None
    """Aggregated: the answer's CVaR (by sorting) minus the master's bound on it, fraction of NAV; at most
    :data:`~bondfolio.solver.cvar_cuts.GAP` unless the partition was exact."""
    omit_when_none = ("master_solves", "groups", "gap")


class SolverReport(OmitUnset, _Part):
    name: str
    status: str
    inaccurate: bool
    order: list[str]
    """The solvers tried, in order."""
    order_from: str | None = None
    """Where the order came from: ``"policy"`` (its ``[solver] order``) or ``"shape: ..."`` (chosen by the
    program's shape; records written before the choice by shape have no such field)."""
    cvar: list[CVaRMethod] | None = None
    """How each ``cvar`` constraint's scenarios were solved (records written before the aggregated method
    have no such field: their ``cvar`` constraints were all solved in ``full``)."""
    omit_when_none = ("order_from", "cvar")
    attempts: list[AttemptRow]
    options: dict[str, Any]


class Provenance(_Part):
    """Where the decision came from: input hashes, software versions, the effective policy."""

    inputs_sha256: str
    snapshot_sha256: str
    policy_sha256: str
    holdings_sha256: str | None
    versions: dict[str, str]
    effective_policy: dict[str, Any]
    """The policy with the implied constraints (budget, long-only, no new deposits) added."""


class Timing(_Part):
    """Wall-clock seconds: the only run-dependent numbers (not hashed)."""

    build_seconds: float
    solve_seconds: float
    solver_seconds: float | None
    attempt_seconds: list[float]


class RecordInputs(_Part):
    """The canonical inputs, as their models dump them (what the input hashes cover)."""

    snapshot: dict[str, Any]
    policy: dict[str, Any]
    holdings: dict[str, Any] | None


# ---------------------------------------------------------------------------------------------- record
class DecisionRecord(_Part):
    """A decision record. Build it with :meth:`bondfolio.solver.decision.Decision.record`; read one with
    :func:`load_decision`."""

    schema_id: str = Field(DECISION_SCHEMA, alias="schema")
    record_sha256: str = ""
    """sha256 of the canonical JSON of everything but ``timing`` and this field."""
    policy: str
    as_of: str
    base_currency: str
    allocation: list[AllocationRow]
    cash: CashRow
    trades: list[Trade]
    metrics: Metrics
    constraints: list[ConstraintRow]
    check: CheckReport
    solver: SolverReport
    rate_impact: dict[str, Any] | None = None
    """Per-market APY before and after, envelope accuracy and repairs (only where rate impact is modelled)."""
    flow: CashFlow | None = None
    """Money in or out: the policy's NAV differs from what the holdings are worth."""
    trade_choice: dict[str, Any] | None = None
    """How the traded positions were chosen under fixed costs and ``min_trade`` (policies with
    ``[execution]``): method, whether exact, nodes, the relaxation's bound and gap."""
    provenance: Provenance
    timing: Timing
    inputs: RecordInputs | None = None
    """The canonical inputs (absent for records written with ``--no-embed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)
    _label: str = PrivateAttr(default="decision")
    _json: dict[str, Any] | None = PrivateAttr(default=None)
    """:meth:`_data`, once made (the record is frozen; :meth:`model_copy` starts without it)."""

    # ------------------------------------------------------------------ building and writing
    def to_dict(self) -> dict[str, Any]:
        """The record as JSON data, keys in the written order; optional parts absent when unset."""
        with collector_paused():
            out = self.model_dump(mode="json", by_alias=True)
        for key in _OPTIONAL:
            if out.get(key) is None:
                out.pop(key, None)
        return out

    def _data(self) -> dict[str, Any]:
        """:meth:`to_dict` with the embedded inputs' own dicts (already JSON data) instead of copies, made
        once: for reading only, so sealing, writing and verifying share one dump."""
        if self._json is not None:
            return self._json
        with collector_paused():
            out = self.model_dump(mode="json", by_alias=True, exclude={"inputs"})
        for key in _OPTIONAL:
            if out.get(key) is None:
                out.pop(key, None)
        if self.inputs is not None:
            out["inputs"] = {"snapshot": self.inputs.snapshot, "policy": self.inputs.policy,
                             "holdings": self.inputs.holdings}
        self._json = out
        return out

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> DecisionRecord:
        copy = super().model_copy(update=update, deep=deep)
        copy._json = None  # the copy's content may differ: it makes its own
        return copy

    def sealed(self, inputs_text: str | None = None) -> DecisionRecord:
        """A copy with ``record_sha256`` set to the hash of its content (``inputs_text``: the embedded
        inputs' canonical text, when already made)."""
        data = self._data()
        seal = record_sha256(data, finite=True, inputs_text=inputs_text)
        out = self.model_copy(update={"record_sha256": seal})
        out._json = {**data, HASH_KEY: seal}  # the same dump, the seal in its place (the keys keep their order)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return dump_record(self._data(), indent, finite=True)

    # ------------------------------------------------------------------ views
    @property
    def label(self) -> str:
        """Where the record came from, for messages (``decision 'out/d.json'``)."""
        return self._label

    @property
    def sha256(self) -> str:
        return self.record_sha256

    @property
    def policy_name(self) -> str:
        return self.policy

    @property
    def embedded(self) -> bool:
        """Whether the inputs are embedded (else they must be passed to :meth:`inputs`)."""
        return self.inputs is not None

    @property
    def weights(self) -> pd.Series:
        """Target weights by opportunity id, as recorded."""
        import pandas as pd

        return pd.Series([a.weight for a in self.allocation], index=pd.Index([a.id for a in self.allocation],
                                                                              name="id"), name="weight")

    @property
    def cash_weight(self) -> float:
        return self.cash.weight

    @property
    def nav(self) -> float:
        return self.metrics.nav

    def weight_vector(self, ids: list[str]) -> np.ndarray:
        """Recorded weights in the order of ``ids`` (which must be the record's own ids)."""
        w = self.weights
        missing = [i for i in ids if i not in w.index]
        if missing or len(ids) != len(w):
            raise InputError(f"{self.label}: its allocation does not cover the snapshot's opportunities "
                             f"(missing {missing[:5]})")
        return w.loc[ids].to_numpy(dtype=float)

    def constraint_specs(self) -> list[dict[str, Any]]:
        """The effective constraints (the policy's plus the implied ones), as recorded."""
        specs = self.provenance.effective_policy.get("constraints")
        if not isinstance(specs, list):
            raise InputError(f"{self.label}: provenance.effective_policy has no 'constraints' list")
        return list(specs)

    def inputs_for(self, snapshot: Any = None, policy: Any = None, holdings: Any = None
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
        the sha256 the record names (see :meth:`inputs_for`); ``None`` for absent holdings."""
        expected = getattr(self.provenance, _INPUT_HASH[key])
        embedded = self.inputs
        if source is None:
            if embedded is None:
                if key == "holdings" and expected is None:
                    return None
                raise _Mismatch(f"the {key} is not embedded (record written without inputs): pass the {key} file it "
                                f"was made from (sha256 {str(expected)[:16]}…)")
            if getattr(embedded, key) is None:
                return None
        loader = {"snapshot": load_snapshot, "policy": load_policy, "holdings": load_holdings}[key]
        model = loader(getattr(embedded, key) if source is None else source)
        actual = input_sha256(model.model_dump(mode="json", by_alias=True))
        if actual != expected:
            where = "embedded" if source is None else "given"
            raise _Mismatch(f"the {where} {key}'s sha256 is {str(actual)[:16]}…, but the decision was made from "
                            f"{str(expected)[:16]}…: pass the {key} the decision was made from")
        return model


class _Mismatch(InputError):
    """An input that is missing from a record or does not match the sha256 it names."""


def load_decision(source: DecisionRecord | str | Path | Mapping[str, Any], verify: bool = True) -> DecisionRecord:
    """Read a decision record (a path, JSON text or a mapping) and verify its ``record_sha256``.

    Raises
    ------
    InputError
        Not a decision record, an unknown schema, no hash, a hash that does not match the content,
        or content the record format does not describe (each problem named by its field).
    """
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
        # json.dumps refuses the NaN or Infinity a text may spell; a text spelling neither has finite numbers
        # only, which the faster encoder writes alike
        finite = isinstance(raw, JsonDocument) and bool(raw.text) and "NaN" not in raw.text \
            and "Infinity" not in raw.text
        try:
            actual = record_sha256(raw, finite=finite)
        except ValueError:
            raise InputError(f"{label} holds a NaN or infinite number: records hold finite numbers only, so it "
                             "was not written by bondfolio") from None
        if actual != stored:
            raise InputError(f"{label}: '{HASH_KEY}' is {stored[:16]}… but the content hashes to {actual[:16]}…: "
                             "the record was edited or damaged after it was written, so it is not trusted")
    try:
        with collector_paused():
            record = DecisionRecord.model_validate(raw)
    except ValidationError as exc:
        problems = [f"field '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors()[:20]]
        raise InputError(problems, f"{label} (decision record format)") from None
    if verify and record_sha256(record._data(), finite=True) != raw[HASH_KEY]:
        raise InputError(f"{label}: its content is not in this bondfolio's record format (the typed record does not "
                         "reproduce the sealed content)")
    record._label = label
    return record


def dump_record(record: Mapping[str, Any], indent: int | None = 2, *, finite: bool = False) -> str:
    """JSON text of a record (finite numbers only, trailing newline).

    With ``finite`` (the record is a JSON-mode dump, so holds no NaN or infinity) orjson writes the
    text: the layout of ``json.dumps`` (two-space indent, keys in order), numbers in their shortest
    round-trip spelling (``5e-7`` and ``0.00005`` where Python writes ``5e-07`` and ``5e-05``), so the
    record reads back to the same numbers and its sha256, taken over the canonical text, is unchanged.
    """
    if finite:
        text = dumps(record, indent=indent, python_floats=False, newline=True)
        if text is not None:
            return text
    return json.dumps(record, indent=indent, allow_nan=False, ensure_ascii=False) + "\n"
