"""``bondfolio plan --verify``: does a plan still fit the chain? Read-only, leg by leg.

Owners run it before signing. At the latest block of each chain the plan touches, it re-reads, in one
batched round per chain (the snapshot's client: same retries, same fault handling, block pinned and
re-checked by hash):

- the Safe's balance of every asset the legs move and its position in every market they touch;
- each market's free liquidity (Aave's cash, Comet's supply less borrows, Morpho's supply less
  borrows, a vault's ``maxWithdraw`` of the Safe) and deposit headroom (a vault's ``maxDeposit``);

then runs the batch's legs in order on those numbers: a withdrawal must fit the position and the free
liquidity left, a deposit the Safe's balance at that point and the headroom left. It also reports the
age of the plan's snapshot block. The verdict is ``fits`` only when every leg does and the block is
younger than ``max_age_seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bondfolio.adapters.base import Call, Fn, Result
from bondfolio.adapters.chain import ChainClient
from bondfolio.adapters.erc20 import BALANCE_OF
from bondfolio.adapters.holdings import position_call, position_units
from bondfolio.execution.actions import UINT_MAX
from bondfolio.execution.plan import Leg, Plan, load_plan

__all__ = ["LegCheck", "Verification", "verify_plan"]

TOTAL_SUPPLY = Fn("totalSupply()", "uint256")
TOTAL_BORROW = Fn("totalBorrow()", "uint256")
MARKET = Fn("market(bytes32)", "uint128,uint128,uint128,uint128,uint128,uint128")
MAX_WITHDRAW = Fn("maxWithdraw(address)", "uint256")
MAX_DEPOSIT = Fn("maxDeposit(address)", "uint256")
VIRTUAL_BALANCE = Fn("getVirtualUnderlyingBalance(address)", "uint128")

#: Default largest age of the plan's snapshot block (seconds) for a plan to still fit.
MAX_AGE_SECONDS = 3600


@dataclass
class LegCheck:
    index: int
    id: str
    action: str
    amount: int
    fits: bool
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"leg {self.index} {self.action} {self.id}: {self.amount} base units"
        return head + (": fits" if self.fits else ": DOES NOT FIT: " + "; ".join(self.reasons))


@dataclass
class Verification:
    plan_sha256: str
    blocks: dict[str, int]
    age_seconds: dict[str, int]
    max_age_seconds: int
    legs: list[LegCheck]

    @property
    def fits(self) -> bool:
        return all(c.fits for c in self.legs) and all(a <= self.max_age_seconds for a in self.age_seconds.values())

    def to_dict(self) -> dict[str, Any]:
        return {"plan_sha256": self.plan_sha256, "fits": self.fits, "blocks": self.blocks,
                "age_seconds": self.age_seconds, "max_age_seconds": self.max_age_seconds,
                "legs": [c.__dict__ for c in self.legs]}

    def text(self) -> str:
        lines = [f"plan {self.plan_sha256[:16]}…: {'still fits' if self.fits else 'DOES NOT FIT'}"]
        for chain, age in self.age_seconds.items():
            old = age > self.max_age_seconds
            lines.append(f"chain {chain}: block {self.blocks[chain]}, the plan's snapshot is {age} s old"
                         + (f" (more than {self.max_age_seconds} s: re-plan)" if old else ""))
        lines += [c.line() for c in self.legs]
        return "\n".join(lines) + "\n"


def _liquidity_call(leg: Leg, safe: str) -> Call | None:
    ex = leg.execution
    if ex.protocol == "aave-v3":
        return BALANCE_OF(ex.asset, ex.receipt)
    if ex.protocol == "compound-v3":
        return TOTAL_SUPPLY(ex.target)
    if ex.protocol == "morpho-blue":
        assert ex.market_id is not None
        return MARKET(ex.target, bytes.fromhex(ex.market_id[2:]))
    if ex.protocol in ("erc4626", "metamorpho"):
        return MAX_WITHDRAW(ex.target, safe)
    return None


def verify_plan(plan: Plan | str | Mapping[str, Any], rpc: Mapping[str, str],
                max_age_seconds: int = MAX_AGE_SECONDS, retries: int = 4, backoff: float = 0.25) -> Verification:
    """Re-read the chain and check every leg of ``plan`` (see the module docstring)."""
    p = load_plan(plan)
    blocks: dict[str, int] = {}
    ages: dict[str, int] = {}
    checks: list[LegCheck] = []
    index = {id(leg): k for k, leg in enumerate(p.batch_legs, 1)}
    for c in p.chains:
        legs = [leg for leg in p.batch_legs if leg.chain == c.chain]
        if not legs:
            continue
        if c.chain not in rpc:
            raise KeyError(c.chain)
        client = ChainClient(rpc[c.chain], c.chain, c.chain_id, retries=retries, backoff=backoff)
        pinned = client.pin(None)
        markets = {leg.id: leg for leg in legs}
        assets = sorted({leg.execution.asset for leg in legs})
        calls: list[Call] = [BALANCE_OF(a, p.safe) for a in assets]
        calls += [position_call(leg.execution, p.safe) for leg in markets.values()]
        extra: list[tuple[str, str, Call]] = []
        for leg in markets.values():
            liq = _liquidity_call(leg, p.safe)
            if liq is not None:
                extra.append((leg.id, "liquidity", liq))
            if leg.execution.protocol == "compound-v3":
                extra.append((leg.id, "borrow", TOTAL_BORROW(leg.execution.target)))
            if leg.execution.protocol == "aave-v3":
                extra.append((leg.id, "virtual", VIRTUAL_BALANCE(leg.execution.target, leg.execution.asset)))
            if leg.execution.protocol in ("erc4626", "metamorpho"):
                extra.append((leg.id, "headroom", MAX_DEPOSIT(leg.execution.target, p.safe)))
        results = client.execute(calls + [e[2] for e in extra])
        client.verify()
        blocks[c.chain] = pinned.number
        snap_block = next((leg for leg in legs), None)
        ages[c.chain] = max(pinned.timestamp - _snapshot_time(p), 0) if snap_block else 0
        balance = {a: _int(r) for a, r in zip(assets, results[:len(assets)], strict=True)}
        position: dict[str, int] = {}
        for leg, r in zip(markets.values(), results[len(assets):len(assets) + len(markets)], strict=True):
            position[leg.id] = leg.execution.assets_of(position_units(leg.execution, r, f"{leg.id} on {c.chain}"))
        fresh: dict[str, dict[str, Result]] = {}
        for (oid, what, _), r in zip(extra, results[len(assets) + len(markets):], strict=True):
            fresh.setdefault(oid, {})[what] = r
        free = {oid: _free(markets[oid], f) for oid, f in fresh.items()}
        headroom = {oid: _headroom(markets[oid], f) for oid, f in fresh.items()}
        for leg in legs:
            reasons: list[str] = []
            if leg.action in ("withdraw", "exit") and leg.execution.protocol == "pendle-pt":
                # a PT sale or redemption: the Safe must hold the PTs; it is credited only the guaranteed
                # proceeds (min_out: the transaction reverts below them)
                pts = leg.units or 0
                if position[leg.id] < pts:
                    reasons.append(f"the Safe holds {position[leg.id]} PT base units, less than the {pts} sold")
                balance[leg.execution.asset] = balance.get(leg.execution.asset, 0) + (leg.min_out or 0)
            elif leg.action in ("withdraw", "exit"):
                need = leg.amount if leg.action == "withdraw" else position[leg.id]
                if leg.action == "withdraw" and position[leg.id] < need:
                    reasons.append(f"the Safe's position is {position[leg.id]} base units, less than {need}")
                if free.get(leg.id) is not None and free[leg.id] < need:  # type: ignore[operator]
                    reasons.append(f"the market has {free[leg.id]} base units free, less than {need}")
                if free.get(leg.id) is not None:
                    free[leg.id] = (free[leg.id] or 0) - need
                balance[leg.execution.asset] = balance.get(leg.execution.asset, 0) + need
            else:
                if balance.get(leg.execution.asset, 0) < leg.amount:
                    reasons.append(f"the Safe will hold {balance.get(leg.execution.asset, 0)} {leg.asset_symbol} base "
                                   f"units at this point, less than {leg.amount}")
                room = headroom.get(leg.id)
                if room is not None and room < leg.amount:
                    reasons.append(f"the market takes {room} more base units, less than {leg.amount}")
                if room is not None:
                    headroom[leg.id] = room - leg.amount
                balance[leg.execution.asset] = balance.get(leg.execution.asset, 0) - leg.amount
            checks.append(LegCheck(index[id(leg)], leg.id, leg.action, leg.amount, not reasons, reasons))
    return Verification(p.plan_sha256, blocks, ages, max_age_seconds, sorted(checks, key=lambda c: c.index))


def _int(r: Result) -> int:
    return int(r.value) if r.ok else 0


def _snapshot_time(p: Plan) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(p.as_of).timestamp())


def _free(leg: Leg, f: dict[str, Result]) -> int | None:
    ex = leg.execution
    liq = f.get("liquidity")
    if liq is None or not liq.ok or liq.values is None:
        return None
    if ex.protocol == "aave-v3":
        virtual = f.get("virtual")
        return int(virtual.value) if virtual is not None and virtual.ok else int(liq.value)
    if ex.protocol == "compound-v3":
        borrow = f.get("borrow")
        return max(int(liq.value) - (int(borrow.value) if borrow is not None and borrow.ok else 0), 0)
    if ex.protocol == "morpho-blue":
        return max(int(liq.values[0]) - int(liq.values[2]), 0)
    return int(liq.value)


def _headroom(leg: Leg, f: dict[str, Result]) -> int | None:
    room = f.get("headroom")
    if room is None or not room.ok:
        return None
    value = int(room.value)
    return None if value == UINT_MAX else value
