"""PT legs through a real Safe 1.4.1 on the real Pendle V7 router: buy, sell, and redeem after expiry.

A Safe holds DAI and the 90-day PT; the decision sells that PT and buys the 180-day one. The plan's
legs (``swapExactPtForToken``, ``swapExactTokenForPt``, from the exact AMM model with the policy's
slippage limit) run in one MultiSendCallOnly batch; the PT and DAI the Safe ends with are what the model
said within 1e-6 (the swaps run seconds after the snapshot: the pool's price drifts by ~1e-9 a second,
and the model is exact to round-off). Past the 90-day expiry, the same path redeems the matured PT 1:1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bondfolio
from bondfolio.adapters.holdings import read_holdings
from bondfolio.adapters.snapshot import read_snapshot
from bondfolio.execution.plan import Plan, build_plan
from bondfolio.execution.verify import verify_plan
from devnet.pendle import buy_pt, pendle_artifact
from devnet.safe import SafeWorld, deploy_safe, execute
from tests.chain import Chain, reverting

WAD = 10**18


def _markets(chain: Chain, tmp_path: Path) -> Path:
    w = chain.world
    body = "".join(f'[[markets]]\nprotocol = "pendle-pt"\nchain = "devnet"\nmarket = "{address}"\n'
                   f'router = "{w.pendle_router}"\nid = "pt-{name}"\n\n' for name, address in w.pendle_markets.items())
    path = tmp_path / "markets.toml"
    path.write_text('[chains.devnet]\nchain_id = 31337\nnative_price = 3000.0\n\n' + body)
    return path


def _token(chain: Chain, address: str) -> Any:
    abi = pendle_artifact("core/YieldContracts/PendlePrincipalToken")["abi"]
    return chain.w3.eth.contract(address=address, abi=abi)


def _run(chain: Chain, sw: SafeWorld, markets: Path, targets: dict[str, float]) -> tuple[Plan, Any, Any]:
    rpc = {"devnet": chain.node.url}
    snapshot, _ = read_snapshot(markets, rpc)
    holdings, _ = read_holdings(markets, rpc, sw.safe.address)
    nav = sum(holdings.positions.values()) + holdings.cash
    weights = {k: v / nav for k, v in targets.items()}
    policy = {"name": "pt-moves", "constraints": [{"kind": "budget", "allow_cash": True},
                                                   {"kind": "max_weight", "limits": weights},
                                                   {"kind": "min_weight", "limits": weights}],
              "execution": {"min_trade": 10.0, "max_slippage_bp": 30.0}}
    decision = bondfolio.allocate(snapshot, policy, holdings)
    plan = build_plan(decision.record, sw.safe.address, sw.multisend)
    assert verify_plan(plan, rpc).fits  # plan --verify: the Safe holds the PTs and the DAI each leg needs
    call = plan.chains[0].call
    assert call is not None
    receipt = execute(chain.w3, sw, call.to, bytes.fromhex(call.data[2:]), operation=call.operation)
    after, _ = read_holdings(markets, rpc, sw.safe.address)
    return plan, receipt, after


@pytest.fixture
def safe_with_pt(chain: Chain, tmp_path: Path) -> Any:
    with reverting(chain):
        sw = deploy_safe(chain.w3, chain.w3.eth.accounts[0], salt=7)
        dai = chain.world.aave.tokens["DAI"]
        dai.functions.mint(sw.safe.address, 300_000 * WAD).transact({"from": chain.w3.eth.accounts[0]})
        buy_pt(chain.w3, chain.world.pendle_router, chain.world.pendle_markets["sdai-90d"], dai, sw.safe.address,
               100_000 * WAD, chain.w3.eth.accounts[6])
        yield sw, _markets(chain, tmp_path)


def test_sell_and_buy_pt_through_the_safe(chain: Chain, safe_with_pt: Any) -> None:
    sw, markets = safe_with_pt
    plan, receipt, after = _run(chain, sw, markets, {"pt-sdai-90d": 0.0, "pt-sdai-180d": 250_000.0})
    assert receipt["status"] == 1 and plan.clean, plan.table()
    assert receipt["gasUsed"] <= plan.gas  # the gas table's Pendle entries hold (measured, times the margin)
    legs = {leg.id: leg for leg in plan.legs}
    sell, buy = legs["pt-sdai-90d"], legs["pt-sdai-180d"]
    assert (sell.action, buy.action) == ("exit", "deposit")
    assert [leg.id for leg in plan.legs] == ["pt-sdai-90d", "pt-sdai-180d"]  # the sale funds nothing it need not
    assert sell.min_out is not None and sell.expected_out is not None and buy.min_out is not None
    assert sell.min_out == int(sell.expected_out * (1 - 30e-4)) and buy.min_out == int(buy.expected_out * (1 - 30e-4))
    # the sale leaves no PT; the buy gets the model's PT out (the router searched from the model's guess)
    assert "pt-sdai-90d" not in (after.units or {})
    got = after.units["pt-sdai-180d"].units
    assert got == pytest.approx(buy.expected_out, rel=1e-6) and got >= buy.min_out
    # the DAI left: 300k, plus what the sale brought, less what the buy paid (each as the model said)
    dai = chain.world.aave.tokens["DAI"].functions.balanceOf(sw.safe.address).call()
    assert dai == pytest.approx(300_000 * WAD + sell.expected_out - buy.amount, rel=1e-6)
    # the reached weights are the decision's (at the snapshot's mark) and pass the check
    assert plan.check.passed


def test_matured_pt_is_redeemed(chain: Chain, safe_with_pt: Any) -> None:
    sw, markets = safe_with_pt
    pt = _token(chain, chain.w3.eth.contract(address=chain.world.pendle_markets["sdai-90d"], abi=pendle_artifact(
        "core/Market/PendleMarketV7")["abi"]).functions.readTokens().call()[1])
    held = pt.functions.balanceOf(sw.safe.address).call()
    chain.node.rpc("evm_increaseTime", 95 * 86400)
    chain.node.rpc("evm_mine")
    plan, receipt, _ = _run(chain, sw, markets, {"pt-sdai-90d": 0.0, "pt-sdai-180d": 0.0})
    assert receipt["status"] == 1 and receipt["gasUsed"] <= plan.gas
    (leg,) = plan.legs
    assert leg.action == "exit" and leg.units == held
    assert leg.txs[1].data.startswith("0x" + bytes(chain.w3.keccak(
        text="redeemPyToToken(address,address,uint256,(address,uint256,address,address,(uint8,address,bytes,bool)))"
    )[:4]).hex())
    assert pt.functions.balanceOf(sw.safe.address).call() == 0
    dai = chain.world.aave.tokens["DAI"].functions.balanceOf(sw.safe.address).call()
    # one PT redeems for the SY worth one DAI (the vault's share price has not moved since)
    assert dai - 300_000 * WAD == pytest.approx(held, rel=1e-9)
