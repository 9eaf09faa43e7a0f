"""The rebalance gate on hand-built books: gains against gas by hand, must-act triggers, the cooldown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bondfolio
from bondfolio.cli import main
from bondfolio.execution.gate import HOLD_EXIT, rebalance_check
from bondfolio.inputs.gas import leg_gas
from tests.factories import opportunity, snapshot

POOL = "0x0000000000000000000000000000000000000C01"
USDC = "0x0000000000000000000000000000000000000D01"
ATOKEN = "0x0000000000000000000000000000000000000E01"
SAFE = "0x00000000000000000000000000000000000000A1"
NAV = 1_000_000.0
ETH = 3000.0


def _opp(oid: str, apy: float, **extra: Any) -> dict[str, Any]:
    ex = {"chain_id": 1, "protocol": "aave-v3", "target": POOL, "asset": USDC, "asset_symbol": "USDC",
          "asset_decimals": 6, "asset_price": 1.0, "receipt": ATOKEN, "measure": "atoken_balance",
          "receipt_decimals": 6, "free_liquidity": 10**15}
    return opportunity(oid, apy, protocol=f"aave-v3-{oid}", execution=ex, **extra)


def _book(gwei: float, b_apy: float = 0.035) -> dict[str, Any]:
    snap = snapshot([_opp("a", 0.03), _opp("b", b_apy)])
    snap["as_of"]["chains"] = {"ethereum": {"chain_id": 1, "block_number": 100, "base_fee_wei": int(gwei * 1e9),
                                            "native_price": ETH}}
    return snap


HOLD = {"positions": {"a": NAV}, "cash": 0.0, "account": SAFE}
POLICY = {"name": "gate", "rebalance": {"horizon_days": 7}}

#: Moving all of a (3 %) into b (3.5 %) gains 0.5 % x 1M x 7 / 365 = 95.89 USD over the week; its two
#: legs (an Aave withdrawal and a deposit) cost their gas estimates at the base fee and ETH at 3,000 USD.
GAIN = 0.005 * NAV * 7 / 365


def _gas_usd(gwei: float) -> float:
    return (leg_gas("aave-v3", "withdraw") + leg_gas("aave-v3", "deposit")) * gwei * 1e-9 * ETH


def test_a_gain_below_its_gas_holds_with_the_numbers() -> None:
    v = rebalance_check(_book(100.0), POLICY, HOLD)
    assert _gas_usd(100.0) > GAIN  # 362,500 gas at 100 gwei: 108.75 USD
    assert v.verdict == "hold" and v.positions_moved == 0
    assert v.reasons[0].startswith("hold: no move clears its costs over 7 days")
    # the best move is no move: the target is the holdings, and nothing is paid
    assert v.costs["total"] == 0.0 and v.gain["over_horizon"] == pytest.approx(0.0, abs=1e-6)


def test_the_same_gain_at_a_lower_base_fee_acts() -> None:
    v = rebalance_check(_book(50.0), POLICY, HOLD)
    assert _gas_usd(50.0) < GAIN  # 54.38 USD
    assert v.verdict == "act" and v.positions_moved == 2
    assert v.gain["over_horizon"] == pytest.approx(GAIN, rel=1e-6)
    assert v.costs["gas"] == pytest.approx(_gas_usd(50.0), rel=1e-9)
    assert v.net_gain == pytest.approx(GAIN - _gas_usd(50.0), rel=1e-6)
    assert v.reasons[0] == ("act: moving 2 positions gains 96 USD over 7 days, costs 54 USD (gas 54 at 50 gwei), "
                            "net 42 clears the threshold 0")
    assert v.decision is not None and v.plan is not None and v.plan["safe"] == SAFE
    assert {t.id: round(t.weight, 9) for t in v.target} == {"a": 0.0, "b": 1.0}


def test_a_threshold_in_bp_of_nav_holds_a_small_net_gain() -> None:
    pol = {"name": "gate", "rebalance": {"horizon_days": 7, "min_net_gain_bp": 1.0}}  # 100 USD on 1M
    v = rebalance_check(_book(50.0), pol, HOLD)
    assert v.verdict == "hold" and v.threshold == pytest.approx(100.0)
    assert "below the threshold 100" in v.reasons[0]


def test_a_breached_cap_acts_at_a_net_loss_and_moves_only_what_clears_it() -> None:
    # a yields more than b, but a cap of 50 % on a (its pool shrank) now binds: sell exactly 10 % of NAV
    snap = _book(100.0, b_apy=0.02)
    pol = {"name": "gate", "rebalance": {"horizon_days": 7},
           "constraints": [{"kind": "max_weight", "limits": {"a": 0.5}}]}
    hold = {"positions": {"a": 0.6 * NAV, "b": 0.4 * NAV}, "cash": 0.0, "account": SAFE}
    v = rebalance_check(snap, pol, hold)
    assert v.verdict == "act" and [t.kind for t in v.triggers] == ["breach"]
    assert "max_weight[a]: 0.6 outside [-inf, 0.5]" in v.triggers[0].detail
    weights = {t.id: t.weight for t in v.target}
    assert weights["a"] == pytest.approx(0.5, abs=1e-7)  # down to exactly its cap, not out of it
    assert weights["b"] == pytest.approx(0.5, abs=1e-7)
    assert v.net_gain < 0  # 10 % moved from 3 % to 2 %, plus gas


def test_the_cooldown_holds(tmp_path: Path) -> None:
    last = bondfolio.allocate(_book(50.0), POLICY, HOLD).to_dict()  # made at the same snapshot time
    pol = {"name": "gate", "rebalance": {"horizon_days": 7, "min_interval_hours": 24}}
    v = rebalance_check(_book(50.0), pol, HOLD, last=last)
    assert v.verdict == "hold"
    assert v.reasons[0].startswith("hold: the last decision was 0.0 h ago, less than min_interval_hours 24")


def test_a_frozen_market_is_left_whatever_the_gain() -> None:
    snap = _book(100.0)
    snap["opportunities"][0]["depositable"] = False
    v = rebalance_check(snap, POLICY, HOLD)
    assert v.verdict == "act" and [(t.kind, t.id) for t in v.triggers] == [("frozen", "a")]
    assert {t.id: round(t.weight, 9) for t in v.target}["a"] == 0.0


def test_command_exit_codes_compose(tmp_path: Path) -> None:
    paths = {}
    for name, data in (("s100", _book(100.0)), ("s50", _book(50.0)), ("h", HOLD), ("p", POLICY)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    out = tmp_path / "d.json"
    assert main(["rebalance-check", str(paths["s100"]), str(paths["p"]), "--holdings", str(paths["h"]),
                 "--out", str(out)]) == HOLD_EXIT == 7
    assert not out.exists()  # nothing to plan on hold
    assert main(["rebalance-check", str(paths["s50"]), str(paths["p"]), "--holdings", str(paths["h"]),
                 "--out", str(out), "--verdict", str(tmp_path / "v.json")]) == 0
    assert json.loads(out.read_text())["schema"] == "bondfolio.decision/1"
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["verdict"] == "act" and len(verdict["verdict_sha256"]) == 64


def test_equal_verdicts_seal_alike_whatever_the_timing() -> None:
    # two runs on the same inputs: the gated decisions' timings differ, the verdicts' seals do not; the
    # seal is recomputed here from the record's content without the decision's timing
    from bondfolio.inputs.base import canonical_json, sha256_hex

    first, second = (rebalance_check(_book(50.0), POLICY, HOLD) for _ in range(2))
    assert first.verdict == second.verdict == "act"
    assert first.decision is not None and second.decision is not None
    assert first.decision["timing"] != second.decision["timing"]
    assert first.verdict_sha256 == second.verdict_sha256
    data = first.to_dict()
    data.pop("verdict_sha256")
    data["decision"].pop("timing")
    assert first.verdict_sha256 == sha256_hex(canonical_json(data, finite=True))
    # and the seal still covers the decision itself
    changed = first.model_copy(update={"decision": {**first.decision, "record_sha256": "0" * 64}}).sealed()
    assert changed.verdict_sha256 != first.verdict_sha256


def test_the_example_treasury_acts_then_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the README's two cases: the example holdings break caps (must act, even at a net loss); the holdings
    # that acting leads to (examples/treasury/holdings-rebalanced.json) hold
    from tests.factories import EXAMPLE

    gate, policy = (EXAMPLE / "gate.toml").read_text(), (EXAMPLE / "policy.toml").read_text()
    assert gate.startswith(policy.rstrip("\n"))  # the gate's policy is the example's, word for word, plus two tables
    args = [str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "gate.toml"), "--holdings"]
    assert main(["rebalance-check", *args, str(EXAMPLE / "holdings.json"), "--out", str(tmp_path / "d.json")]) == 0
    act = capsys.readouterr().out
    assert act.startswith("ACT: act: must act (8 triggers); moving 20 positions")
    assert "max_weight{max=0.12}[aave-v3-eth-usdc]: 0.28 outside [-inf, 0.12]" in act
    assert main(["rebalance-check", *args, str(EXAMPLE / "holdings-rebalanced.json")]) == HOLD_EXIT
    assert capsys.readouterr().out.startswith("HOLD: hold: no move clears its costs over 7 days")
