"""``bondfolio monitor`` on the devnet: the real PoolConfigurator freezes an Aave reserve the Safe holds;
the pass reports a must-act verdict and a plan that leaves that market."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bondfolio.adapters.holdings import read_holdings
from bondfolio.cli import main
from devnet.deploy import Deployer
from devnet.safe import deploy_safe, fund_safe
from tests.chain import Chain, reverting


def test_a_frozen_aave_reserve_forces_an_exit(chain: Chain, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    w3, world = chain.w3, chain.world
    with reverting(chain):
        sw = deploy_safe(w3, w3.eth.accounts[0], salt=7)
        fund_safe(w3, world, sw)
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        markets = tmp_path / "markets.toml"
        markets.write_text(world.markets_toml(world.vault_lookback_blocks + w3.eth.block_number - world.block + 1))
        holdings, _ = read_holdings(markets, {"devnet": chain.node.url}, sw.safe.address)
        hold = tmp_path / "holdings.json"
        hold.write_text(holdings.model_dump_json(by_alias=True))
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({"name": "monitor", "rebalance": {"horizon_days": 7},
                                      "constraints": [{"kind": "budget", "allow_cash": True}]}))
        usdc = world.aave.tokens["USDC"].address
        Deployer(w3).send(world.aave.configurator.functions.setReserveFreeze(usdc, True))  # the real configurator
        out = tmp_path / "out"
        out.mkdir()
        capsys.readouterr()
        code = main(["monitor", "--markets", str(markets), "--rpc", chain.node.url, "--policy", str(policy),
                     "--holdings", str(hold), "--out", str(out), "--multisend", sw.multisend])
        captured = capsys.readouterr()
    assert code == 0, captured.err
    event = json.loads(captured.out)
    assert event["verdict"] == "act" and event["must_act"] is True
    assert [(t["kind"], t["id"]) for t in event["triggers"]] == [("frozen", "aave-v3-devnet-usdc")]
    health = {h["id"]: h for h in event["health"]}
    assert health["aave-v3-devnet-usdc"]["depositable"] is False
    assert captured.err.startswith("[devnet #") and "MUST ACT (1 triggers)" in captured.err
    plan = json.loads((out / "plan.json").read_text())
    legs = {leg["id"]: leg for leg in plan["legs"]}
    assert legs["aave-v3-devnet-usdc"]["action"] == "exit"  # the whole position leaves the frozen reserve
    verdict = json.loads((out / "verdict.json").read_text())
    weights = {t["id"]: t["weight"] for t in verdict["target"]}
    assert weights["aave-v3-devnet-usdc"] == pytest.approx(0.0, abs=1e-9)
    assert {p.name for p in out.iterdir()} == {"snapshot.json", "verdict.json", "decision.json", "plan.json"}
