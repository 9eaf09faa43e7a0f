"""The plan's balance sheet by hand: reductions, deferrals, intents, dropped trades and the check of the
weights it reaches; the batch encodings against independent decoders and the published vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode

import bondfolio
from bondfolio.errors import InputError
from bondfolio.execution.actions import UINT_MAX
from bondfolio.execution.plan import Plan, build_plan, load_plan
from bondfolio.execution.safe import (
    MULTISEND_CALL_ONLY,
    MULTISEND_SELECTOR,
    multisend,
    multisend_call_only_address,
    tx_builder_checksum,
)
from tests.factories import ROOT, opportunity, snapshot

SAFE = "0x00000000000000000000000000000000000000A1"
MULTI = "0x00000000000000000000000000000000000000B2"
POOL = "0x0000000000000000000000000000000000000C01"
USDC = "0x0000000000000000000000000000000000000D01"
DAI = "0x0000000000000000000000000000000000000D02"
ATOKEN = "0x0000000000000000000000000000000000000E01"
VAULT = "0x0000000000000000000000000000000000000F01"

#: The decision's weights are exact to the check's tolerance (1e-7 of NAV): at a NAV of 600k that is
#: 0.06 USDC, 60,000 base units; amounts the solver decides are compared within it.
ROUND = 60_000


def _aave(oid: str, asset: str, symbol: str, decimals: int, free: int, headroom: int | None = None,
          apy: float = 0.05) -> dict[str, Any]:
    ex = {"chain_id": 1, "protocol": "aave-v3", "target": POOL, "asset": asset, "asset_symbol": symbol,
          "asset_decimals": decimals, "asset_price": 1.0, "receipt": ATOKEN, "measure": "atoken_balance",
          "receipt_decimals": decimals, "free_liquidity": free}
    if headroom is not None:
        ex["deposit_headroom"] = headroom
    return opportunity(oid, apy, protocol="aave-v3", asset=symbol, execution=ex)


def _book(free_a: int = 10**15, headroom_b: int | None = None, dai: bool = False, idle: int = 0,
          units: bool = True) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Two USDC markets, a (6 dp), b; c a DAI market (18 dp) when ``dai``. Holdings: 600k in a."""
    opps = [_aave("a", USDC, "USDC", 6, free_a, apy=0.06), _aave("b", USDC, "USDC", 6, 10**15, headroom_b, apy=0.03)]
    if dai:
        opps[1] = _aave("b", DAI, "DAI", 18, 10**30, apy=0.03)
    snap = snapshot(opps)
    hold: dict[str, Any] = {"positions": {"a": 600_000.0}, "cash": idle / 1e6}
    if units:
        hold["units"] = {"a": {"units": 600_000 * 10**6, "assets": 600_000 * 10**6}}
        if idle:
            hold["idle"] = [{"chain": "ethereum", "token": USDC, "symbol": "USDC", "decimals": 6, "units": idle,
                             "value": idle / 1e6}]
    return snap, hold, {"name": "moves", "constraints": [{"kind": "budget", "allow_cash": True},
                                                          {"kind": "max_weight", "limits": {"a": 0.5}}]}


def _plan(snap: dict, hold: dict, pol: dict, **kw: Any) -> Plan:
    return build_plan(bondfolio.allocate(snap, pol, hold).record, SAFE, MULTI, **kw)


def test_a_withdrawal_beyond_free_liquidity_is_reduced_never_reverting() -> None:
    # the policy moves 300k from a (capped at 50 %) to b; a has only 120k free
    plan = _plan(*_book(free_a=120_000 * 10**6))
    w, d = plan.legs
    assert (w.action, w.status, w.amount) == ("withdraw", "reduced", 120_000 * 10**6)
    assert w.wanted == pytest.approx(300_000 * 10**6, abs=ROUND)
    assert "120000000000 base units of free liquidity" in (w.reason or "")
    # the deposit is funded by what the Safe holds at that point: the 120k withdrawn
    assert (d.action, d.status, d.amount) == ("deposit", "reduced", 120_000 * 10**6)
    reached = {r.id: r.reached_weight for r in plan.reached}
    assert reached == pytest.approx({"a": 480 / 600, "b": 120 / 600}, abs=1e-12)  # 480k and 120k of 600k
    # a stays above its 50 % cap: the check names it and the plan is flagged
    assert not plan.check.passed and plan.check.violations == ["max_weight[a] = 0.8 outside [-inf, 0.5]"]
    assert not plan.clean


def test_liquidity_margin_keeps_part_of_the_pool() -> None:
    snap, hold, pol = _book(free_a=200_000 * 10**6)
    pol["execution"] = {"liquidity_margin": 0.25}
    w = _plan(snap, hold, pol).legs[0]
    assert w.amount == 150_000 * 10**6  # 75 % of the 200k free


def test_a_full_exit_uses_the_protocols_idiom_and_leaves_no_dust() -> None:
    snap, hold, pol = _book()
    pol["constraints"][1]["limits"] = {"a": 0.0}
    plan = _plan(snap, hold, pol)
    leg = plan.legs[0]
    assert (leg.action, leg.amount, leg.expected_assets_after) == ("exit", 600_000 * 10**6, 0)
    asset, amount, to = decode(["address", "uint256", "address"], bytes.fromhex(leg.txs[0].data[10:]))
    assert amount == UINT_MAX and to.lower() == SAFE.lower() and asset.lower() == USDC.lower()
    assert plan.clean and plan.check.passed


def test_deposit_cap_reduces_the_deposit_and_the_check_flags_the_idle_cash() -> None:
    snap, hold, pol = _book(headroom_b=100_000 * 10**6)
    plan = _plan(snap, hold, pol)
    d = plan.legs[1]
    assert (d.status, d.amount) == ("reduced", 100_000 * 10**6)
    assert "takes only 100000000000 more base units before its cap" in (d.reason or "")
    assert plan.reached_cash == pytest.approx(200_000 / 600_000, abs=1e-7)  # the rest stays idle


def test_another_asset_becomes_a_swap_intent_never_netted() -> None:
    # USDC freed from a cannot fund b's DAI deposit: a swap intent at worst 50 bp below par
    snap, hold, pol = _book(dai=True)
    plan = _plan(snap, hold, pol)
    (intent,) = plan.intents
    assert (intent.kind, intent.from_symbol, intent.to_symbol) == ("swap", "USDC", "DAI")
    assert intent.amount == pytest.approx(300_000 * 10**6, abs=ROUND)  # all the USDC withdrawn
    assert intent.amount == plan.legs[0].amount  # exactly what the withdrawal freed
    assert intent.min_out == pytest.approx(intent.amount * 0.995 * 10**12, rel=1e-12)  # 50 bp, 6 -> 18 dp
    waiting = [leg for leg in plan.legs if leg.status == "awaits_intent"]
    assert len(waiting) == 1 and waiting[0].depends_on == [intent.id] and waiting[0].txs == []
    assert all(leg.asset != DAI for leg in plan.batch_legs)  # nothing depending on the swap is encoded
    assert not plan.clean


def test_min_trade_and_missing_execution_data_are_reported() -> None:
    snap, hold, pol = _book()
    pol["execution"] = {"min_trade": 400_000.0}
    plan = _plan(snap, hold, pol)
    assert plan.legs == [] and {s.id for s in plan.skipped} == {"a", "b"}
    assert "below [execution] min_trade 400,000.00" in plan.skipped[0].reason
    snap, hold, pol = _book()
    del snap["opportunities"][1]["execution"]
    plan = _plan(snap, hold, pol)
    (s,) = plan.skipped
    assert s.id == "b" and "no address is guessed" in s.reason


def test_idle_cash_funds_deposits_only_when_broken_down_by_token() -> None:
    snap, hold, pol = _book(idle=100_000 * 10**6)
    pol["constraints"][1]["limits"] = {"a": 1.0, "b": 0.0}
    pol["constraints"].append({"kind": "min_weight", "limits": {"a": 600_000 / 700_000}})
    plan = _plan(snap, hold, pol)
    (d,) = plan.legs
    assert (d.id, d.action, d.amount, d.status) == ("a", "deposit", 100_000 * 10**6, "ready")
    snap, hold, _ = _book(idle=100_000 * 10**6, units=False)  # the same 100k idle, as bare cash
    plan = _plan(snap, hold, pol)
    assert plan.legs[0].status == "deferred"
    assert any("not broken down by token" in n for n in plan.notes)


def test_plan_is_sealed_and_points_at_its_decision(tmp_path: Path) -> None:
    snap, hold, pol = _book()
    decision = bondfolio.allocate(snap, pol, hold)
    plan = build_plan(decision.record, SAFE, MULTI)
    assert plan.decision_sha256 == decision.record.sha256
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    assert load_plan(path) == plan
    edited = json.loads(path.read_text())
    edited["legs"][0]["amount"] += 1
    with pytest.raises(InputError, match="does not match its content"):
        load_plan(edited)
    with pytest.raises(InputError, match=r"MultiSendCallOnly 1\.4\.1 is not listed for chain id 31337"):
        s2 = json.loads(json.dumps(snap))
        for o in s2["opportunities"]:
            o["execution"]["chain_id"] = 31337
        build_plan(bondfolio.allocate(s2, pol, hold).record, SAFE)


# ---------------------------------------------------------------------------------------------- encodings
def test_multisend_packing_decodes_independently() -> None:
    calls = [("0x" + "11" * 20, 0, b"\x01\x02\x03"), ("0x" + "22" * 20, 5, b"")]
    data = multisend(calls)
    assert data[:4] == MULTISEND_SELECTOR == bytes.fromhex("8d80ff0a")
    (packed,) = decode(["bytes"], data[4:])
    # walk the packing: 1-byte operation, 20-byte to, 32-byte value, 32-byte length, data
    out, k = [], 0
    while k < len(packed):
        op, to = packed[k], packed[k + 1:k + 21]
        value = int.from_bytes(packed[k + 21:k + 53], "big")
        n = int.from_bytes(packed[k + 53:k + 85], "big")
        out.append((op, "0x" + to.hex(), value, packed[k + 85:k + 85 + n]))
        k += 85 + n
    assert out == [(0, "0x" + "11" * 20, 0, b"\x01\x02\x03"), (0, "0x" + "22" * 20, 5, b"")]


def test_multisend_addresses_equal_the_safe_deployments_package() -> None:
    assets = ROOT / "node_modules" / "@safe-global" / "safe-deployments" / "dist" / "assets"
    for version, table in MULTISEND_CALL_ONLY.items():
        data = json.loads((assets / f"v{version}" / "multi_send_call_only.json").read_text())
        assert set(table) == set(data["networkAddresses"])
        for chain, kinds in data["networkAddresses"].items():
            listed = [kinds] if isinstance(kinds, str) else kinds
            assert table[chain] in {data["deployments"][k]["address"] for k in listed}
    assert multisend_call_only_address(1) == "0x9641d764fc13c8B624c04430C7356C1C7C8102e2"
    assert multisend_call_only_address(31337) is None


def test_checksum_of_a_real_transaction_builder_export() -> None:
    # a batch exported by the Safe{Wallet} Transaction Builder 1.18.2 (public, mainnet USDC approve)
    batch = {"version": "1.0", "chainId": "1", "createdAt": 1761326849944,
             "meta": {"name": "Transactions Batch", "description": "", "txBuilderVersion": "1.18.2",
                      "createdFromSafeAddress": "0xA77DE01e157f9f57C7c4A326eeE9C4874D0598b6",
                      "createdFromOwnerAddress": "",
                      "checksum": "0x8b5032f716845c8b08bab3d63dbd9ba92e056f3557793cd041e59b84e16aa989"},
             "transactions": [{"to": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "value": "0", "data": None,
                               "contractMethod": {"inputs": [
                                   {"internalType": "address", "name": "spender", "type": "address"},
                                   {"internalType": "uint256", "name": "value", "type": "uint256"}],
                                   "name": "approve", "payable": False},
                               "contractInputsValues": {"spender": "0x474e5Ded6b5D078163BFB8F6dBa355C3aA5478C8",
                                                        "value": "100000000000"}}]}
    assert tx_builder_checksum(batch) == batch["meta"]["checksum"]
    renamed = {**batch, "meta": {**batch["meta"], "name": "renamed"}}
    assert tx_builder_checksum(renamed) == batch["meta"]["checksum"]  # the name is not covered
    edited = json.loads(json.dumps(batch))
    edited["transactions"][0]["value"] = "1"
    assert tx_builder_checksum(edited) != batch["meta"]["checksum"]
