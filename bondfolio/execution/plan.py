"""``bondfolio plan``: a decision turned into ordered, verified legs and an unsigned Safe batch.

The plan reads a sealed decision record (its embedded snapshot, policy and holdings) and never the
chain: every address, decimal and liquidity figure comes from the snapshot's ``execution`` data
(filled by the readers), every current position from the holdings (``bondfolio holdings`` records them
in token base units). An opportunity without execution data gets no legs, and the plan says why.

Order, per chain: every decrease first (withdrawals and full exits), then every increase (an exact
``approve``, then the deposit). A simulated balance sheet runs through the legs:

- the Safe's balance of each token starts at its idle balance (``holdings.idle``) and never goes
  negative: a deposit is funded by what the Safe holds at that point, rounded down;
- a withdrawal fits the market's free liquidity, less ``[execution] liquidity_margin``, after the
  earlier legs; a full exit that does not fit becomes a partial withdrawal;
- a deposit fits the market's deposit headroom (supply caps, ``maxDeposit``).

A leg that does not fit is reduced or deferred, with the reason. Money that must change asset or chain
is never netted silently: the shortfall of a deposit becomes a swap (same chain) or bridge (another
chain) *intent* with its worst acceptable output (``[execution] max_slippage_bp``), which the plan
does not encode, and the part of the deposit that waits for it is marked and left out of the batch.

The plan then reports the weights it actually reaches and runs the independent constraint check on
them: a constraint the rounding, reductions or deferrals break is named and the plan is flagged (not
``clean``). Gas per leg comes from :mod:`bondfolio.inputs.gas`; the total is priced at the
snapshot's base fee. The plan is a typed model (``bondfolio schema plan``), sealed by ``plan_sha256``
and pointing at the decision's ``record_sha256``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bondfolio.constraints.variables import Point
from bondfolio.errors import InputError
from bondfolio.execution.actions import (
    Call,
    deposit_calls,
    exit_call,
    pendle_buy_calls,
    pendle_sell_calls,
    supports,
    withdraw_call,
)
from bondfolio.execution.safe import batch_file, multisend, multisend_call_only_address
from bondfolio.inputs.base import OmitUnset, canonical_json, parse_address, read_source, sha256_hex
from bondfolio.inputs.execution import Execution
from bondfolio.inputs.gas import BATCH_OVERHEAD, leg_gas
from bondfolio.inputs.policy import ExecutionSettings
from bondfolio.inputs.snapshot import PendleCurve
from bondfolio.inputs.universe import Universe
from bondfolio.solver.decision import TRADE_EPSILON
from bondfolio.solver.pendle_amm import PendleAmm
from bondfolio.solver.program import effective_constraints
from bondfolio.solver.record import DecisionRecord, dump_record, load_decision

__all__ = ["PLAN_SCHEMA", "Intent", "Leg", "Plan", "build_plan", "load_plan"]

PLAN_SCHEMA = "bondfolio.plan/1"
PLAN_HASH_KEY = "plan_sha256"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Tx(_Part):
    """One transaction of a leg."""

    to: str
    value: int = 0
    data: str
    """0x-hex calldata."""
    description: str


class Leg(OmitUnset, _Part):
    """One protocol action (a withdrawal, a full exit or a deposit) and its transactions."""

    id: str
    """The opportunity."""
    chain: str
    protocol: str
    action: Literal["withdraw", "exit", "deposit"]
    asset: str
    asset_symbol: str
    amount: int
    """Asset base units moved (for an exit: the assets expected out)."""
    units: int | None
    """For an exit: the position's units redeemed (shares where it counts shares)."""
    amount_base: float
    """Base currency."""
    wanted: int
    """Asset base units the decision asked for."""
    status: Literal["ready", "reduced", "deferred", "awaits_intent"]
    reason: str | None
    depends_on: list[str]
    """Intent ids this (part of a) leg waits for; such legs are not in the batch."""
    gas: int
    """Estimated gas (see :mod:`bondfolio.inputs.gas`)."""
    execution: Execution
    """The market's execution data at the snapshot (what ``plan --verify`` re-reads)."""
    expected_assets_after: int
    """The position's assets (asset base units) after this leg, before interest accrues."""
    txs: list[Tx]
    value_base: float | None = None
    """Pendle legs: the position's change in value at the snapshot's PT price, base currency (what is paid
    or received, ``amount_base``, differs from it by the AMM's fee and price impact)."""
    expected_out: int | None = None
    """Pendle legs: what the exact AMM model says the leg gets (PT base units for a buy, asset base units
    for a sale or redemption)."""
    min_out: int | None = None
    """Pendle legs: the least the transaction accepts (``[execution] max_slippage_bp`` below
    ``expected_out``); the chain reverts the batch below it."""

    omit_when_none = ("value_base", "expected_out", "min_out")


class Intent(_Part):
    """A swap or bridge the plan needs but does not encode."""

    id: str
    kind: Literal["swap", "bridge"]
    from_chain: str
    to_chain: str
    from_asset: str
    from_symbol: str
    to_asset: str
    to_symbol: str
    amount: int
    """From-asset base units to sell or send."""
    min_out: int
    """Worst acceptable to-asset base units received (``[execution] max_slippage_bp`` below par)."""
    amount_base: float
    for_legs: list[str]


class Skipped(_Part):
    """A trade of the decision that gets no legs, and why."""

    id: str
    amount_base: float
    reason: str


class Reached(_Part):
    """Per opportunity: the decision's target weight and the weight the plan reaches."""

    id: str
    target_weight: float
    reached_weight: float
    reached_amount: float


class BatchCall(_Part):
    """The single call the Safe makes for a chain's batch: MultiSendCallOnly by DELEGATECALL."""

    to: str
    value: int
    data: str
    operation: int
    """1 (DELEGATECALL), as MultiSendCallOnly requires."""
    transactions: int


class ChainPlan(_Part):
    chain: str
    chain_id: int
    block_number: int | None
    base_fee_wei: int | None
    native_price: float | None
    multisend: str | None
    gas: int
    """Legs plus the batch overhead."""
    gas_cost: float | None
    """Base currency at the snapshot's base fee, when the native token's price is known."""
    call: BatchCall | None


class PlanCheck(_Part):
    passed: bool
    tolerance: float
    violations: list[str]
    """``constraint[row] = value outside [lower, upper]`` for every row the reached weights break."""


class Plan(_Part):
    """An execution plan: typed, sealed by ``plan_sha256``, pointing at its decision."""

    schema_id: str = Field(PLAN_SCHEMA, alias="schema")
    plan_sha256: str = ""
    decision_sha256: str
    policy: str
    as_of: str
    safe: str
    nav: float
    legs: list[Leg]
    intents: list[Intent]
    skipped: list[Skipped]
    reached: list[Reached]
    reached_cash: float
    """Idle cash after the plan (fraction of NAV)."""
    chains: list[ChainPlan]
    check: PlanCheck
    clean: bool
    """Every leg ready, no intent, nothing skipped but dust, and the reached weights pass the check."""
    notes: list[str]
    gas: int
    gas_cost: float | None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        return dump_record(self.to_dict(), finite=True)

    def sealed(self) -> Plan:
        data = self.to_dict()
        data.pop(PLAN_HASH_KEY, None)
        return self.model_copy(update={PLAN_HASH_KEY: sha256_hex(canonical_json(data, finite=True))})

    @property
    def batch_legs(self) -> list[Leg]:
        return [leg for leg in self.legs if leg.txs]

    def batch_files(self) -> dict[str, dict[str, Any]]:
        """Per chain with transactions, the Transaction Builder batch file."""
        created = _created_ms(self.as_of)
        out = {}
        for c in self.chains:
            txs = [(t.to, t.value, bytes.fromhex(t.data[2:])) for leg in self.batch_legs if leg.chain == c.chain
                   for t in leg.txs]
            if txs:
                out[c.chain] = batch_file(c.chain_id, created, f"bondfolio plan {self.policy}",
                                          f"decision {self.decision_sha256}", self.safe, txs)
        return out

    def table(self) -> str:
        lines = [f"plan for decision {self.decision_sha256[:16]}… (policy '{self.policy}'), Safe {self.safe}", ""]
        head = f"{'#':>3} {'chain':<10} {'action':<8} {'id':<36} {'amount':>16} {'status':<13} {'gas':>8}"
        lines += [head, "-" * len(head)]
        for k, leg in enumerate(self.legs, 1):
            lines.append(f"{k:>3} {leg.chain[:10]:<10} {leg.action:<8} {leg.id[:36]:<36} {leg.amount_base:>16,.2f} "
                         f"{leg.status:<13} {leg.gas:>8,}")
            if leg.reason:
                lines.append(f"      {leg.reason}")
        for i in self.intents:
            lines.append(f"intent {i.id}: {i.kind} {i.amount} {i.from_symbol} base units on {i.from_chain} -> at least "
                         f"{i.min_out} {i.to_symbol} on {i.to_chain} (for {', '.join(i.for_legs)}): not encoded")
        for s in self.skipped:
            lines.append(f"no legs for {s.id} ({_money(s.amount_base)}): {s.reason}")
        cost = "unknown (no native price)" if self.gas_cost is None else f"{self.gas_cost:,.2f}"
        lines += ["", f"gas: {self.gas:,} in all; cost {cost}"]
        for c in self.chains:
            if c.call is not None:
                lines.append(f"chain {c.chain} (id {c.chain_id}): {c.call.transactions} transactions in one "
                             f"MultiSendCallOnly call to {c.call.to} (DELEGATECALL)")
        check = self.check
        lines.append(f"check of the reached weights: {'passed' if check.passed else 'FAILED'}"
                     + "".join(f"\n  {v}" for v in check.violations))
        lines += [f"note: {n}" for n in self.notes]
        lines.append("plan is clean" if self.clean else "plan is NOT clean: read the reasons above before signing")
        return "\n".join(lines) + "\n"


def load_plan(source: Plan | str | Path | Mapping[str, Any]) -> Plan:
    """Read a plan (path, JSON text or mapping) and verify its ``plan_sha256``."""
    if isinstance(source, Plan):
        return source
    raw, label = read_source(source if not isinstance(source, Mapping) else dict(source), "plan")
    if not isinstance(raw, dict) or raw.get("schema") != PLAN_SCHEMA:
        raise InputError(f"{label} is not a bondfolio plan (schema {PLAN_SCHEMA!r})")
    stored = raw.get(PLAN_HASH_KEY)
    body = {k: v for k, v in raw.items() if k != PLAN_HASH_KEY}
    if not isinstance(stored, str) or sha256_hex(canonical_json(body)) != stored:
        raise InputError(f"{label}: '{PLAN_HASH_KEY}' does not match its content: the plan was edited or damaged")
    try:
        return Plan.model_validate(raw)
    except ValidationError as exc:
        problems = [f"field '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors()[:20]]
        raise InputError(problems, label) from None


# ---------------------------------------------------------------------------------------------- building
def build_plan(decision: DecisionRecord | str | Path | Mapping[str, Any], safe: str,
               multisend_address: str | None = None, safe_version: str = "1.4.1") -> Plan:
    """The execution plan of a decision record for the Safe at ``safe`` (see the module docstring).

    Raises
    ------
    InputError
        A bad address, a record that fails verification, or a chain without a known MultiSendCallOnly
        (pass ``multisend_address``).
    """
    record = load_decision(decision)
    safe = parse_address(safe, "--safe")
    snap, pol, hold = record.inputs_for()
    settings = pol.execution or ExecutionSettings()
    u = Universe.build(snap, hold, pol.nav)
    nav = u.nav
    opps = {o.id: o for o in snap.opportunities}
    notes: list[str] = []
    sheet = _Sheet(settings, pol.solver.check_tolerance * u.nav)
    if hold is not None and hold.idle:
        for b in hold.idle:
            sheet.balance[(b.chain, b.token)] = b.units
    elif u.cash0 > 0:
        notes.append("the holdings' idle cash is not broken down by token (read them with 'bondfolio holdings'): "
                     "deposits are funded only by this plan's withdrawals")
    if hold is not None and hold.account is not None and hold.account != safe:
        notes.append(f"the holdings were read for {hold.account}, not for the Safe {safe}")
    units = hold.units or {} if hold is not None else {}

    skipped: list[Skipped] = []
    trades: list[tuple[Any, Execution]] = []
    for a in record.allocation:
        if abs(a.trade_amount) <= TRADE_EPSILON * nav:
            continue
        o = opps[a.id]
        ex = o.execution
        if ex is None:
            skipped.append(Skipped(id=a.id, amount_base=a.trade_amount, reason="the snapshot has no execution data for "
                                   "it (read the market with 'bondfolio snapshot'); no address is guessed"))
        elif not supports(ex):
            skipped.append(Skipped(id=a.id, amount_base=a.trade_amount, reason=f"{ex.protocol} trades go through the "
                                   "protocol's router, which this version does not encode"))
        elif abs(a.trade_amount) < settings.min_trade:
            skipped.append(Skipped(id=a.id, amount_base=a.trade_amount,
                                   reason=f"{_money(abs(a.trade_amount))} is below [execution] min_trade "
                                          f"{_money(settings.min_trade)}"))
        else:
            trades.append((a, ex))
    if settings.max_legs is not None and len(trades) > settings.max_legs:
        keep = sorted(trades, key=lambda t: -abs(t[0].trade_amount))[:settings.max_legs]
        for a, _ in trades:
            if all(a is not k[0] for k in keep):
                skipped.append(Skipped(id=a.id, amount_base=a.trade_amount,
                                       reason=f"beyond [execution] max_legs = {settings.max_legs} (smaller trades go "
                                              "first)"))
        trades = [t for t in trades if any(t[0] is k[0] for k in keep)]

    legs: list[Leg] = []
    now = int(snap.as_of.timestamp.timestamp())
    for a, ex in (t for t in trades if t[0].trade_amount < 0):
        if ex.protocol == "pendle-pt":
            legs.append(sheet.sell_pt(a, ex, opps[a.id], units.get(a.id), safe, nav, settings, now))
        else:
            legs.append(sheet.decrease(a, ex, units.get(a.id), safe, nav, settings))
    deposits = [(a, ex) for a, ex in trades if a.trade_amount > 0]
    funded = [sheet.buy_pt(a, ex, opps[a.id], safe, settings) if ex.protocol == "pendle-pt" else sheet.fund(a, ex, safe)
              for a, ex in deposits]
    intents = sheet.intents(funded, settings)
    for deposit in funded:
        legs.extend(deposit.legs())

    # the weights the plan reaches, and the independent check on them
    delta: dict[str, float] = {}
    cash = u.cash0 * nav
    amm_cost = 0.0
    for leg in legs:
        if leg.status in ("deferred", "awaits_intent"):
            continue
        sign = -1.0 if leg.action in ("withdraw", "exit") else 1.0
        current = next(a.current_amount for a in record.allocation if a.id == leg.id)
        moved = leg.amount_base if leg.value_base is None else leg.value_base  # PTs move at their mark
        change = -current if leg.action == "exit" else sign * moved
        delta[leg.id] = delta.get(leg.id, 0.0) + change
        cash -= change
        if leg.value_base is not None:  # an AMM trade pays its fee and price impact on top of the value moved
            amm_cost += (-change - leg.amount_base) if sign < 0 else (leg.amount_base - change)
    if amm_cost:
        # the decision charges one-off costs in its objective and keeps weights at the pre-trade mark over
        # the NAV: the reached weights do the same, and the cost is said here (the legs' amounts are real)
        notes.append(f"PT trades cost {_money(amm_cost)} (the AMM's fee and price impact, from the exact model), "
                     "paid out of idle cash: the reached weights and cash are at the snapshot's mark before it")
    reached = [Reached(id=a.id, target_weight=a.weight,
                       reached_weight=(a.current_amount + delta.get(a.id, 0.0)) / nav if a.id in delta else
                       a.current_weight, reached_amount=a.current_amount + delta.get(a.id, 0.0))
               for a in record.allocation]
    w = np.array([r.reached_weight for r in reached])
    check = _check(u, pol, Point(w, cash / nav, record.metrics.margin_posted))

    chains = _chains(legs, snap, settings, multisend_address, safe_version, notes)
    gas = sum(c.gas for c in chains)
    costs = [c.gas_cost for c in chains if c.gas > 0]
    gas_cost = None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))
    dust_only = all(abs(s.amount_base) < max(settings.min_trade, 1e-12) for s in skipped)
    clean = (all(leg.status == "ready" for leg in legs) and not intents and dust_only and check.passed)
    return Plan(decision_sha256=record.sha256, policy=record.policy, as_of=record.as_of, safe=safe, nav=nav,
                legs=legs, intents=intents, skipped=skipped, reached=reached, reached_cash=cash / nav, chains=chains,
                check=check, clean=clean, notes=notes, gas=gas, gas_cost=gas_cost).sealed()


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _units(amount: float, decimals: int) -> int:
    """Whole tokens -> base units, rounded down, exact (via the float's decimal expansion)."""
    return int((Decimal(repr(amount)) * (Decimal(10) ** decimals)).to_integral_value(rounding=ROUND_FLOOR))


def _created_ms(as_of: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(as_of).timestamp() * 1000)


class _Deposit:
    """A deposit as the balance sheet funds it: ``wanted`` (the decision), ``target`` (within the
    market's headroom), ``funded`` (from the Safe's balance), and what waits for intents."""

    def __init__(self, a: Any, ex: Execution, wanted: int, target: int, funded: int, cap_reason: str | None,
                 safe: str, current: int, slack: int = 0) -> None:
        self.a, self.ex, self.safe, self.current, self.slack = a, ex, safe, current, slack
        self.wanted, self.target, self.funded, self.cap_reason = wanted, target, funded, cap_reason
        self.waiting = 0
        self.intents: list[str] = []

    @property
    def shortfall(self) -> int:
        return self.target - self.funded

    def _leg(self, amount: int, status: Literal["ready", "reduced", "deferred", "awaits_intent"], reason: str | None,
             after: int, txs: list[Tx]) -> Leg:
        ex, a = self.ex, self.a
        return Leg(id=a.id, chain=a.chain, protocol=ex.protocol, action="deposit", asset=ex.asset,
                   asset_symbol=ex.asset_symbol, amount=amount, units=None,
                   amount_base=amount / 10**ex.asset_decimals * ex.asset_price, wanted=self.wanted, status=status,
                   reason=reason, depends_on=self.intents if status == "awaits_intent" else [],
                   gas=leg_gas(ex.protocol, "deposit") if amount else 0, execution=ex, expected_assets_after=after,
                   txs=txs)

    def _calls(self, amount: int) -> list[Call]:
        return deposit_calls(self.ex, amount, self.safe)

    def legs(self) -> list[Leg]:
        out = []
        reasons = [r for r in (self.cap_reason, None if self.funded >= self.target else
                               f"the Safe holds only {self.funded} of the {self.target} base units at this point")
                   if r]
        if self.funded > 0:
            status: Literal["ready", "reduced"] = "ready" if self.funded >= self.wanted - self.slack else "reduced"
            out.append(self._leg(self.funded, status, "; ".join(reasons) or None, self.current + self.funded,
                                 _txs(self._calls(self.funded))))
        if self.waiting > 0:
            out.append(self._leg(self.waiting, "awaits_intent", "funded by an intent the plan does not encode: "
                                 "deposit after it settles", self.current + self.funded + self.waiting, []))
        if self.funded <= 0 and self.waiting <= 0:
            out.append(self._leg(0, "deferred", "; ".join(reasons) or "nothing to deposit", self.current, []))
        return out


class _PtDeposit(_Deposit):
    """A PT buy: the asset the exact AMM model says the wanted PT costs, funded like any deposit; the leg
    swaps what is funded for at least ``max_slippage_bp`` below the model's PT out."""

    def __init__(self, base: _Deposit, amm: PendleAmm, unit: float, haircut: float) -> None:
        super().__init__(base.a, base.ex, base.wanted, base.target, base.funded, base.cap_reason, base.safe,
                         base.current, base.slack)
        self.amm, self.unit, self.haircut = amm, unit, haircut

    def _quote(self, amount: int) -> tuple[float, int, int]:
        """PT (whole tokens) that ``amount`` asset base units buy, in PT base units a hair under the model's
        answer (so the router accepts it at once: float round-off is ~1e-16), and the least accepted."""
        ex = self.ex
        pt = self.amm.pt_out_for_asset(amount / 10**ex.asset_decimals) if amount > 0 else 0.0
        expected = math.floor(pt * (1 - 1e-12) * 10**ex.receipt_decimals)
        return pt, expected, math.floor(expected * self.haircut)

    def _calls(self, amount: int) -> list[Call]:
        _, expected, minimum = self._quote(amount)
        return pendle_buy_calls(self.ex, amount, expected, minimum, self.safe)

    def _leg(self, amount: int, status: Literal["ready", "reduced", "deferred", "awaits_intent"], reason: str | None,
             after: int, txs: list[Tx]) -> Leg:
        pt, expected, minimum = self._quote(amount)
        leg = super()._leg(amount, status, reason, after, txs)
        return leg.model_copy(update={"value_base": pt * self.amm.price * self.unit, "expected_out": expected,
                                      "min_out": minimum, "expected_assets_after": self.current + expected})


def _pendle(o: Any) -> tuple[PendleAmm, float]:
    """The exact AMM of a PT opportunity at its read time, and its asset's price."""
    curve = o.rate_curve
    if not isinstance(curve, PendleCurve):
        raise InputError(f"opportunity {o.id}: a Pendle PT leg needs the market's curve ('rate_curve' of model "
                         "'pendle', which 'bondfolio snapshot' reads); this snapshot has none")
    amm = PendleAmm.of(curve)
    return amm, (1.0 if o.price is None else o.price / amm.price)


def _txs(calls: list[Call]) -> list[Tx]:
    return [Tx(to=c.to, value=c.value, data="0x" + c.data.hex(), description=c.description) for c in calls]


class _Sheet:
    """The simulated balance sheet: the Safe's token balances and each market's free liquidity and
    deposit headroom, as the legs run in order."""

    def __init__(self, settings: ExecutionSettings, round_off: float) -> None:
        self.settings = settings
        self.round_off = round_off
        """Base currency within which an amount is the decision's (its weights are exact to the check's
        tolerance): a leg short of its wanted amount by less than this is not a reduction."""
        self.balance: dict[tuple[str, str], int] = {}
        self.tokens: dict[tuple[str, str], Execution] = {}
        self.withdrawn: dict[str, int] = {}
        self.deposited: dict[str, int] = {}

    def _key(self, a: Any, ex: Execution) -> tuple[str, str]:
        self.tokens.setdefault((a.chain, ex.asset), ex)
        return (a.chain, ex.asset)

    def decrease(self, a: Any, ex: Execution, held: Any, safe: str, nav: float, settings: ExecutionSettings) -> Leg:
        scale = 10**ex.asset_decimals
        key = self._key(a, ex)
        current = held.assets if held is not None else _units(a.current_amount / ex.asset_price, ex.asset_decimals)
        wanted = min(_units(-a.trade_amount / ex.asset_price, ex.asset_decimals), current)
        full = a.amount <= max(settings.min_trade, TRADE_EPSILON * nav)
        usable = math.floor(ex.free_liquidity * (1.0 - settings.liquidity_margin)) - self.withdrawn.get(a.id, 0)
        reason = None
        if full:
            wanted = current
        amount = min(wanted, max(usable, 0))
        slack = _units(self.round_off / ex.asset_price, ex.asset_decimals)
        if amount < wanted - slack:
            reason = (f"the market has {max(usable, 0)} base units of free liquidity left (after the liquidity margin "
                      f"and earlier legs), less than the {wanted} wanted")
        self.withdrawn[a.id] = self.withdrawn.get(a.id, 0) + amount
        self.balance[key] = self.balance.get(key, 0) + amount
        if amount <= 0:
            return Leg(id=a.id, chain=a.chain, protocol=ex.protocol, action="withdraw", asset=ex.asset,
                       asset_symbol=ex.asset_symbol, amount=0, units=None, amount_base=0.0, wanted=wanted,
                       status="deferred", reason=reason, depends_on=[], gas=0, execution=ex,
                       expected_assets_after=current, txs=[])
        status: Literal["ready", "reduced"] = "ready" if amount >= wanted - slack else "reduced"
        if full and amount == wanted and (held is not None or ex.protocol in ("aave-v3", "compound-v3")):
            n = held.units if held is not None else 0
            return Leg(id=a.id, chain=a.chain, protocol=ex.protocol, action="exit", asset=ex.asset,
                       asset_symbol=ex.asset_symbol, amount=amount, units=n,
                       amount_base=amount / scale * ex.asset_price, wanted=wanted, status="ready", reason=None,
                       depends_on=[], gas=leg_gas(ex.protocol, "exit"), execution=ex, expected_assets_after=0,
                       txs=_txs([exit_call(ex, n, safe)]))
        if full and amount == wanted:
            reason = "a full exit by shares needs the position in units (read holdings with 'bondfolio holdings'): " \
                     "withdrawn by amount, dust may stay"
        return Leg(id=a.id, chain=a.chain, protocol=ex.protocol, action="withdraw", asset=ex.asset,
                   asset_symbol=ex.asset_symbol, amount=amount, units=None, amount_base=amount / scale * ex.asset_price,
                   wanted=wanted, status=status, reason=reason, depends_on=[], gas=leg_gas(ex.protocol, "withdraw"),
                   execution=ex, expected_assets_after=current - amount, txs=_txs([withdraw_call(ex, amount, safe)]))

    def fund(self, a: Any, ex: Execution, safe: str) -> _Deposit:
        key = self._key(a, ex)
        wanted = _units(a.trade_amount / ex.asset_price, ex.asset_decimals)
        current = _units(a.current_amount / ex.asset_price, ex.asset_decimals)
        target, cap_reason = wanted, None
        if ex.deposit_headroom is not None:
            room = max(ex.deposit_headroom - self.deposited.get(a.id, 0), 0)
            if room < wanted:
                target = room
                cap_reason = f"the market takes only {room} more base units before its cap (wanted {wanted})"
        have = self.balance.get(key, 0)
        funded = min(target, have)
        self.balance[key] = have - funded
        self.deposited[a.id] = self.deposited.get(a.id, 0) + funded
        slack = _units(self.round_off / ex.asset_price, ex.asset_decimals)
        if funded >= target - slack and cap_reason is None:
            target = funded  # short by solver round-off only: not a reduction
        return _Deposit(a, ex, wanted, target, funded, cap_reason, safe, current, slack)

    def buy_pt(self, a: Any, ex: Execution, o: Any, safe: str, settings: ExecutionSettings) -> _Deposit:
        """A PT buy funded like a deposit, its size in the asset from the exact AMM model (the wanted PT at
        the snapshot's mark, plus the fee and the price impact of buying them)."""
        amm, unit = _pendle(o)
        pt = a.trade_amount / (amm.price * unit)
        paid = float(amm.asset_in_for_pt(min(pt, amm.max_pt_out())))
        base = self.fund(a.model_copy(update={"trade_amount": paid * ex.asset_price}), ex, safe)
        base.current = _units(a.current_amount / (amm.price * unit), ex.receipt_decimals)
        return _PtDeposit(base, amm, unit, 1.0 - settings.max_slippage_bp / 1e4)

    def sell_pt(self, a: Any, ex: Execution, o: Any, held: Any, safe: str, nav: float,
                settings: ExecutionSettings, now: int) -> Leg:
        """Sell PTs on the market (or redeem them once the market has expired) for the asset, at least
        ``max_slippage_bp`` below the exact model's proceeds; a sale the pool cannot absorb (its PT share
        would pass 96 %, less the liquidity margin) is reduced."""
        assert ex.pendle is not None
        expired = ex.pendle.expiry <= now
        scale = 10**ex.receipt_decimals
        key = self._key(a, ex)
        haircut = 1.0 - settings.max_slippage_bp / 1e4
        if expired:  # one PT redeems for the SY worth one asset
            price = ex.asset_price
            amm = None
        else:
            amm, unit = _pendle(o)
            price = amm.price * unit
        current = held.units if held is not None else _units(a.current_amount / price, ex.receipt_decimals)
        full = a.amount <= max(settings.min_trade, TRADE_EPSILON * nav)
        wanted = current if full else min(_units(-a.trade_amount / price, ex.receipt_decimals), current)
        amount, reason = wanted, None
        if amm is not None:
            room = math.floor(amm.max_pt_in() * (1.0 - settings.liquidity_margin) * scale) - self.withdrawn.get(a.id, 0)
            if room < wanted:
                amount = max(room, 0)
                reason = (f"the pool absorbs only {max(room, 0)} more PT base units before it is 96 % PT (after the "
                          f"liquidity margin), less than the {wanted} wanted")
        self.withdrawn[a.id] = self.withdrawn.get(a.id, 0) + amount
        q = amount / scale
        out = q if amm is None else float(amm.asset_out_for_pt(q))  # asset tokens
        expected = math.floor(out * (1 - 1e-12) * 10**ex.asset_decimals)
        minimum = math.floor(expected * haircut)
        self.balance[key] = self.balance.get(key, 0) + minimum  # only the guaranteed proceeds fund later legs
        action: Literal["withdraw", "exit"] = "exit" if amount == current and amount > 0 else "withdraw"
        status: Literal["ready", "reduced", "deferred"] = ("deferred" if amount <= 0 else
                                                             "ready" if amount >= wanted else "reduced")
        txs = _txs(pendle_sell_calls(ex, amount, minimum, safe, expired)) if amount > 0 else []
        return Leg(id=a.id, chain=a.chain, protocol=ex.protocol, action=action, asset=ex.asset,
                   asset_symbol=ex.asset_symbol, amount=expected, units=amount,
                   amount_base=expected / 10**ex.asset_decimals * ex.asset_price, wanted=wanted, status=status,
                   reason=reason, depends_on=[], gas=leg_gas(ex.protocol, action) if amount > 0 else 0, execution=ex,
                   expected_assets_after=current - amount, txs=txs, value_base=q * price, expected_out=expected,
                   min_out=minimum)

    def intents(self, deposits: list[_Deposit], settings: ExecutionSettings) -> list[Intent]:
        """Cover each deposit's shortfall from the balances left: another asset on the same chain (a
        swap), else another chain (a bridge), at worst ``max_slippage_bp`` below par."""
        out: list[Intent] = []
        haircut = 1.0 - settings.max_slippage_bp / 1e4
        for d in deposits:
            need = d.shortfall
            if need <= 0:
                continue
            ex = d.ex
            need_base = need / 10**ex.asset_decimals * ex.asset_price
            sources = sorted((k for k, v in self.balance.items() if v > 0 and k != (d.a.chain, ex.asset)),
                             key=lambda k: (k[0] != d.a.chain, k))
            for key in sources:
                if need_base <= 0:
                    break
                src = self.tokens[key]
                have_base = self.balance[key] / 10**src.asset_decimals * src.asset_price
                take_base = min(have_base, need_base / haircut)
                amount = min(self.balance[key], math.ceil(take_base / src.asset_price * 10**src.asset_decimals))
                receive = _units(take_base * haircut / ex.asset_price, ex.asset_decimals)
                self.balance[key] -= amount
                kind: Literal["swap", "bridge"] = "swap" if key[0] == d.a.chain else "bridge"
                intent = Intent(id=f"{kind}-{len(out) + 1}", kind=kind, from_chain=key[0], to_chain=d.a.chain,
                                from_asset=src.asset, from_symbol=src.asset_symbol, to_asset=ex.asset,
                                to_symbol=ex.asset_symbol, amount=amount, min_out=receive,
                                amount_base=take_base, for_legs=[d.a.id])
                out.append(intent)
                d.intents.append(intent.id)
                d.waiting += receive
                need_base -= take_base * haircut
        return out


def _check(u: Universe, pol: Any, x: Point) -> PlanCheck:
    tol = pol.solver.check_tolerance
    violations = []
    for c in effective_constraints(pol, u.snapshot.opportunities):
        for r in c.check(x, u):
            if r.violation > tol:
                violations.append(f"{r.constraint}[{r.row}] = {r.value:.10g} outside [{r.lower:.10g}, {r.upper:.10g}]")
    return PlanCheck(passed=not violations, tolerance=tol, violations=violations)


def _chains(legs: list[Leg], snap: Any, settings: ExecutionSettings, multisend_address: str | None,
            safe_version: str, notes: list[str]) -> list[ChainPlan]:
    out = []
    for chain in sorted({leg.chain for leg in legs}):
        block = snap.as_of.chains.get(chain)
        chain_legs = [leg for leg in legs if leg.chain == chain]
        batch = [leg for leg in chain_legs if leg.txs]
        ex_ids = {leg.id for leg in chain_legs}
        chain_id = next(o.execution.chain_id for o in snap.opportunities if o.id in ex_ids and o.execution)
        target = multisend_address or multisend_call_only_address(chain_id, safe_version)
        if batch and target is None:
            raise InputError(f"MultiSendCallOnly {safe_version} is not listed for chain id {chain_id} ({chain}) in "
                             "@safe-global/safe-deployments: pass --multisend ADDRESS")
        gas = sum(leg.gas for leg in batch) + (BATCH_OVERHEAD if batch else 0)
        base_fee = block.base_fee_wei if block is not None else None
        native = (block.native_price if block is not None else None) or settings.native_price.get(chain)
        if base_fee is not None and native is not None:
            cost: float | None = gas * base_fee / 1e18 * native
        elif settings.gas_per_leg is not None:
            cost = settings.gas_per_leg * len(batch)
        else:
            cost = None
            if batch:
                missing = " and ".join(m for m, v in (("base fee", base_fee), ("native token price", native))
                                       if v is None)
                notes.append(f"chain {chain}: the snapshot has no {missing} (set [chains.{chain}] native_price in "
                             "MARKETS.toml or [execution] native_price) and the policy no [execution] gas_per_leg: "
                             "the gas cost in base currency is unknown")
        call = None
        if batch and target is not None:
            txs = [(t.to, t.value, bytes.fromhex(t.data[2:])) for leg in batch for t in leg.txs]
            call = BatchCall(to=parse_address(target, "--multisend"), value=0, data="0x" + multisend(txs).hex(),
                             operation=1, transactions=len(txs))
        out.append(ChainPlan(chain=chain, chain_id=chain_id, block_number=None if block is None else block.block_number,
                             base_fee_wei=base_fee, native_price=native, multisend=target, gas=gas, gas_cost=cost,
                             call=call))
    return out
