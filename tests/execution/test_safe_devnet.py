"""The whole path on a real chain: a real Safe 1.4.1 holds positions in every devnet market; snapshot,
holdings, allocate with a policy that forces a move in every protocol, plan, then execute the batch
through ``execTransaction`` (signed with the node's test key: test code only) and read the positions
back with the readers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from web3 import Web3
from web3.logs import DISCARD

import bondfolio
from bondfolio.adapters.holdings import read_holdings
from bondfolio.adapters.snapshot import read_snapshot
from bondfolio.cli import main
from bondfolio.execution.plan import Plan, build_plan
from bondfolio.execution.verify import verify_plan
from devnet.safe import SafeWorld, deploy_safe, execute, fund_safe
from tests.chain import Chain, reverting

#: Read-back tolerance per position: one base unit per leg, plus interest accrued over the blocks mined
#: between the snapshot and the read-back (a few seconds at under 50 % a year: 1e-5 relative is ample).
REL_INTEREST = 1e-5


def _policy(holdings_value: float) -> dict[str, Any]:
    # every weight pinned (min = max): Aave USDC and Morpho out entirely, the vault halved, Comet takes
    # its idle 100k, MetaMorpho takes what Morpho frees, Aave DAI what the vault frees; the Aave USDC
    # proceeds stay idle (no other USDC-A market)
    nav = holdings_value
    target = {"aave-v3-devnet-usdc": 0.0, "aave-v3-devnet-dai": 100_000 / nav, "compound-v3-devnet-usdc": 300_000 / nav,
              "morpho-blue-devnet-weth-usdc-86": 0.0, "savings-devnet-dai": 100_000 / nav,
              "metamorpho-devnet-usdc": 400_000 / nav, "pendle-pt-devnet-sdai-90d": 0.0,
              "pendle-pt-devnet-sdai-180d": 0.0}
    return {"name": "devnet-moves", "constraints": [
        {"kind": "budget", "allow_cash": True},
        {"kind": "max_weight", "limits": target},
        {"kind": "min_weight", "limits": target},
    ], "execution": {"min_trade": 10.0}}


@pytest.fixture(scope="module")
def executed(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    w3 = chain.w3
    with reverting(chain):
        sw = deploy_safe(w3, w3.eth.accounts[0])
        fund_safe(w3, chain.world, sw)
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        rpc = {"devnet": chain.node.url}
        out = tmp_path_factory.mktemp("plan")
        # the vaults' yield windows reach back over the funding blocks to the world's own week of growth
        lookback = chain.world.vault_lookback_blocks + w3.eth.block_number - chain.world.block
        markets = out / "markets.toml"
        markets.write_text(chain.world.markets_toml(lookback))
        snapshot, _ = read_snapshot(markets, rpc)
        holdings, _ = read_holdings(markets, rpc, sw.safe.address)
        decision = bondfolio.allocate(snapshot, _policy(sum(holdings.positions.values()) + holdings.cash), holdings)
        plan = build_plan(decision.record, sw.safe.address, sw.multisend)
        before = verify_plan(plan, rpc)
        record = out / "decision.json"
        record.write_text(decision.to_json())
        call = plan.chains[0].call
        assert call is not None
        receipt = execute(w3, sw, call.to, bytes.fromhex(call.data[2:]), operation=call.operation)
        after_holdings, _ = read_holdings(markets, rpc, sw.safe.address)
        after = verify_plan(plan, rpc)
        yield {"plan": plan, "receipt": receipt, "holdings": holdings, "after": after_holdings, "sw": sw,
               "before": before, "after_verify": after, "record": record, "out": out, "w3": w3,
               "markets": markets, "url": chain.node.url}


def test_plan_orders_legs_and_is_clean(executed: dict[str, Any]) -> None:
    plan: Plan = executed["plan"]
    actions = [(leg.action, leg.id) for leg in plan.legs]
    decreases = [k for k, (a, _) in enumerate(actions) if a in ("withdraw", "exit")]
    increases = [k for k, (a, _) in enumerate(actions) if a == "deposit"]
    assert max(decreases) < min(increases)  # every decrease before every increase
    assert {a for a, _ in actions} == {"withdraw", "exit", "deposit"}
    assert {leg.protocol for leg in plan.legs} == {"aave-v3", "compound-v3", "morpho-blue", "metamorpho", "erc4626"}
    exits = {leg.id: leg for leg in plan.legs if leg.action == "exit"}
    assert set(exits) == {"aave-v3-devnet-usdc", "morpho-blue-devnet-weth-usdc-86"}
    # Aave's full exit is withdraw(asset, type(uint256).max, safe); Morpho's withdraws every supply share
    aave_exit = exits["aave-v3-devnet-usdc"].txs[0].data
    assert aave_exit.endswith("f" * 64 + plan.safe[2:].lower().rjust(64, "0"))
    morpho = exits["morpho-blue-devnet-weth-usdc-86"]
    assert morpho.units == executed["holdings"].units["morpho-blue-devnet-weth-usdc-86"].units
    for leg in plan.legs:
        if leg.action == "deposit":  # an exact approve, then the deposit
            assert len(leg.txs) == 2 and leg.txs[0].to == leg.asset
            assert leg.txs[0].data.endswith(f"{leg.amount:064x}")
    assert all(leg.status == "ready" for leg in plan.legs)
    assert plan.intents == [] and plan.check.passed and plan.clean
    assert executed["before"].fits


def test_batch_executes_through_the_safe_and_positions_match(executed: dict[str, Any]) -> None:
    plan: Plan = executed["plan"]
    receipt = executed["receipt"]
    sw: SafeWorld = executed["sw"]
    assert receipt["status"] == 1
    (ok,) = sw.safe.events.ExecutionSuccess().process_receipt(receipt, errors=DISCARD)
    assert ok is not None
    assert not sw.safe.events.ExecutionFailure().process_receipt(receipt, errors=DISCARD)
    after = executed["after"]
    legs_by_id: dict[str, list[Any]] = {}
    for leg in plan.legs:
        legs_by_id.setdefault(leg.id, []).append(leg)
    for oid, legs in legs_by_id.items():
        expected = legs[-1].expected_assets_after
        got = after.units[oid].assets if after.units and oid in after.units else 0
        tol = len(legs) + REL_INTEREST * expected
        assert abs(got - expected) <= tol, (oid, got, expected)
    # the full exits leave nothing behind: not one base unit
    assert "aave-v3-devnet-usdc" not in (after.units or {})
    assert "morpho-blue-devnet-weth-usdc-86" not in (after.units or {})
    # gas: within the estimate, and the estimate within its stated margin of what was used
    used = receipt["gasUsed"]
    assert used <= plan.gas, (used, plan.gas)
    # the estimate is the measured table times MARGIN (1.25) plus the overhead: not looser than 1.5x
    assert plan.gas <= 1.5 * used, (plan.gas, used)
    # afterwards the same plan no longer fits (its withdrawals are done)
    assert not executed["after_verify"].fits


def test_batch_file_is_valid_and_its_checksum_independent(executed: dict[str, Any]) -> None:
    plan: Plan = executed["plan"]
    (batch,) = plan.batch_files().values()
    assert batch["version"] == "1.0" and batch["chainId"] == "31337"
    assert isinstance(batch["createdAt"], int)
    assert batch["createdAt"] == int(__import__("datetime").datetime.fromisoformat(plan.as_of).timestamp() * 1000)
    meta = batch["meta"]
    assert meta["description"] == f"decision {plan.decision_sha256}" and meta["createdFromOwnerAddress"] == ""
    assert meta["createdFromSafeAddress"] == plan.safe
    for tx in batch["transactions"]:  # numbers as strings, by the format's rules
        assert isinstance(tx["value"], str) and tx["value"].isdigit()
        assert tx["contractMethod"] is None and tx["contractInputsValues"] is None
        assert tx["data"].startswith("0x") and Web3.is_checksum_address(tx["to"])
    assert meta["checksum"] == _independent_checksum(batch)
    assert len(batch["transactions"]) == plan.chains[0].call.transactions  # type: ignore[union-attr]


def _independent_checksum(batch: dict[str, Any]) -> str:
    """The Transaction Builder checksum written again, differently (an explicit stack walk)."""
    data = json.loads(json.dumps(batch))
    data["meta"].pop("checksum", None)
    data["meta"]["name"] = None
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            keys = sorted(v.keys())
            out.append("{" + json.dumps(keys, separators=(",", ":")))
            for k in keys:
                walk(v[k])
                out.append(",")
            out.append("}")
        elif isinstance(v, list):
            out.append("[")
            for i, x in enumerate(v):
                if i:
                    out.append(",")
                walk(x)
            out.append("]")
        else:
            out.append(json.dumps(v, ensure_ascii=False))

    walk(data)
    return "0x" + keccak("".join(out).encode("utf-8")).hex()


def test_plan_command_writes_plan_and_batch(executed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out: Path = executed["out"]
    sw: SafeWorld = executed["sw"]
    code = main(["plan", str(executed["record"]), "--safe", sw.safe.address, "--multisend", sw.multisend,
                 "--out", str(out / "plan.json"), "--safe-batch", str(out / "batch.json")])
    assert code == 0, capsys.readouterr().out
    written = json.loads((out / "plan.json").read_text())
    assert written["plan_sha256"] == executed["plan"].plan_sha256  # deterministic: the same decision, the same plan
    assert json.loads((out / "batch.json").read_text())["meta"]["checksum"].startswith("0x")
    assert "plan is clean" in capsys.readouterr().out


def test_holdings_and_verify_commands(executed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out: Path = executed["out"]
    sw: SafeWorld = executed["sw"]
    path = out / "holdings.json"
    assert main(["holdings", "--markets", str(executed["markets"]), "--rpc", executed["url"], "--account",
                 sw.safe.address, "--out", str(path)]) == 0
    written = json.loads(path.read_text())
    assert written["account"] == sw.safe.address
    assert written["units"] == {k: v.model_dump() for k, v in (executed["after"].units or {}).items()}
    plan_path = out / "verify-plan.json"
    plan_path.write_text(executed["plan"].to_json())
    capsys.readouterr()
    # the batch was executed: its withdrawals no longer fit the Safe's positions (exit 8), leg by leg
    assert main(["plan", "--verify", str(plan_path), "--rpc", executed["url"]]) == 8
    text = capsys.readouterr().out
    assert "DOES NOT FIT" in text and "the Safe's position is" in text
    assert main(["holdings", "--markets", str(executed["markets"]), "--rpc", executed["url"], "--account",
                 "0x123", "--out", str(out / "bad.json")]) == 2
    assert not (out / "bad.json").exists()
