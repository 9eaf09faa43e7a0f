"""The real Pendle V7 market on the devnet (npm ``@pendle/core-v2`` artifacts, :mod:`devnet.pendle`).

The reader's PT price, implied rate and duration against the market's own views and Pendle's oracle at
several times to expiry; the exact AMM model (:mod:`bondfolio.solver.pendle_amm`) and the program's cost
lines against the real router's swaps at 30 trade sizes up to the market's depth.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bondfolio.adapters.base import SECONDS_PER_YEAR
from bondfolio.adapters.snapshot import read_snapshot
from bondfolio.inputs.snapshot import PendleCurve
from bondfolio.solver.pendle_amm import PendleAmm
from devnet.deploy import built
from devnet.pendle import pendle_artifact
from tests.chain import Chain, reverting

WAD = 10**18
ZERO = "0x0000000000000000000000000000000000000000"
EMPTY_LIMIT = (ZERO, 0, [], [], b"")  # LimitOrderData: no limit orders
NO_SWAP = (0, ZERO, b"", False)  # SwapData: no aggregator


def markets_file(chain: Chain, tmp_path: Path) -> Path:
    w = chain.world
    body = "".join(f'[[markets]]\nprotocol = "pendle-pt"\nchain = "devnet"\nmarket = "{address}"\n'
                   f'router = "{w.pendle_router}"\nid = "pt-{name}"\n\n' for name, address in w.pendle_markets.items())
    path = tmp_path / "pendle.toml"
    path.write_text(body)
    return path


def contracts(chain: Chain, name: str) -> dict[str, Any]:
    w3 = chain.w3
    market = w3.eth.contract(address=chain.world.pendle_markets[name],
                             abi=pendle_artifact("core/Market/PendleMarketV7")["abi"])
    sy, pt, yt = market.functions.readTokens().call()
    erc20 = pendle_artifact("core/YieldContracts/PendlePrincipalToken")["abi"]
    router_abi = []
    for facet in ("ActionSwapPTV3", "ActionMiscV3"):
        router_abi += [e for e in pendle_artifact(f"router/{facet}")["abi"] if e["type"] == "function"]
    oracle = pendle_artifact("oracles/PtYtLpOracle/PendlePYLpOracle")["abi"]
    return {"market": market, "pt": w3.eth.contract(address=pt, abi=erc20),
            "router": w3.eth.contract(address=chain.world.pendle_router, abi=router_abi),
            "oracle": w3.eth.contract(address=chain.world.pendle_oracle, abi=oracle),
            "dai": chain.world.aave.tokens["DAI"], "sy": sy, "yt": yt}


@pytest.mark.parametrize("days", [0, 30, 60, 89])
def test_reader_equals_the_market_and_its_oracle(chain: Chain, tmp_path: Path, days: int) -> None:
    # at several times to expiry: the stored rate does not move without trades, the PT price drifts to par
    c = contracts(chain, "sdai-90d")
    with reverting(chain):
        if days:
            chain.node.rpc("evm_increaseTime", days * 86400)
            chain.node.rpc("evm_mine")
        snapshot, _ = read_snapshot(markets_file(chain, tmp_path), {"devnet": chain.node.url})
        block = snapshot.as_of.chains["devnet"].block_number
        state = c["market"].functions.readState(chain.world.pendle_router).call(block_identifier=block)
        oracle_price = c["oracle"].functions.getPtToAssetRate(c["market"].address, 0).call(block_identifier=block)
    o = next(o for o in snapshot.opportunities if o.id == "pt-sdai-90d")
    now = int(snapshot.as_of.timestamp.timestamp())
    tau = state[5] - now
    assert o.apy == pytest.approx(math.expm1(state[8] / WAD), rel=1e-15)
    assert o.duration == pytest.approx(tau / SECONDS_PER_YEAR, rel=1e-15)
    assert o.price == pytest.approx(math.exp(-state[8] / WAD * tau / SECONDS_PER_YEAR), rel=1e-15)
    # Pendle's own oracle: the same price in its integer arithmetic (1e-18 scale, truncated)
    assert o.price == pytest.approx(oracle_price / WAD, abs=2e-18 + 1e-15)
    assert isinstance(o.rate_curve, PendleCurve)
    assert PendleAmm.of(o.rate_curve).price == pytest.approx(o.price, rel=1e-15)


def _buy(chain: Chain, c: dict[str, Any], amount: int, guess: int, when: int) -> int:
    """``swapExactTokenForPt`` of ``amount`` DAI at time ``when`` by a fresh buyer; PT received."""
    w3, buyer = chain.w3, chain.w3.eth.accounts[5]
    dai, router = c["dai"], c["router"]
    dai.functions.mint(buyer, amount).transact({"from": buyer})
    dai.functions.approve(router.address, amount).transact({"from": buyer})
    chain.node.rpc("evm_setNextBlockTimestamp", when)
    # the model's answer as the off-chain guess, searched within 1e-6 of it to 1e-10 (the router's eps)
    approx = (guess - guess // 10**6, guess + guess // 10**6, guess, 100, 10**8)
    token_in = (dai.address, amount, dai.address, ZERO, NO_SWAP)
    before = c["pt"].functions.balanceOf(buyer).call()
    tx = router.functions.swapExactTokenForPt(buyer, c["market"].address, 0, approx, token_in, EMPTY_LIMIT
                                              ).transact({"from": buyer, "gas": 3_000_000})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    return int(c["pt"].functions.balanceOf(buyer).call() - before)


def test_thirty_buys_against_the_exact_model_and_the_cost_lines(chain: Chain, tmp_path: Path) -> None:
    c = contracts(chain, "sdai-180d")
    snapshot, _ = read_snapshot(markets_file(chain, tmp_path), {"devnet": chain.node.url})
    o = next(o for o in snapshot.opportunities if o.id == "pt-sdai-180d")
    assert isinstance(o.rate_curve, PendleCurve)
    curve = o.rate_curve
    base = PendleAmm.of(curve)
    depth = float(base.asset_in_for_pt(base.max_pt_out()))  # the most asset the market can take
    sizes = np.geomspace(10.0, 0.95 * depth, 30)
    when = curve.timestamp + 15
    amm = PendleAmm.of(curve, now=when)  # the model at the swap's own time
    nav = 2.0 * depth
    knots, costs, bound = base.cost_lines(-0.0, 0.99 * depth, 1.0, 2.5e-7, nav)
    worst = 0.0
    for amount in sizes:
        units = int(amount * WAD)
        predicted = amm.pt_out_for_asset(units / WAD)
        with reverting(chain):
            got = _buy(chain, c, units, int(predicted * WAD), when) / WAD
        worst = max(worst, abs(got - predicted) / got)
        # the program's cost of buying what was bought, at the snapshot's mark: never below the real cost
        # (the real trade 15 s later; the price drifts by ~1e-9 in 15 s), and above it by at most the bound
        value = got * base.price
        real = units / WAD - value
        modelled = float(np.interp(value, knots, costs))
        assert -1e-9 * value <= modelled - real <= bound + 1e-9 * value, (amount, modelled, real, bound)
    assert worst <= 1e-6  # the target; measured 1.7e-16 (the float model is exact to round-off)
    assert sizes[-1] > 0.9 * depth


def test_sell_matches_the_model(chain: Chain, tmp_path: Path) -> None:
    c = contracts(chain, "sdai-90d")
    snapshot, _ = read_snapshot(markets_file(chain, tmp_path), {"devnet": chain.node.url})
    o = next(o for o in snapshot.opportunities if o.id == "pt-sdai-90d")
    assert isinstance(o.rate_curve, PendleCurve)
    seller, router, dai = chain.w3.eth.accounts[5], c["router"], c["dai"]
    with reverting(chain):
        amount = 50_000 * WAD
        when = o.rate_curve.timestamp + 15
        amm = PendleAmm.of(o.rate_curve, now=when)
        got = _buy(chain, c, amount, int(amm.pt_out_for_asset(amount / WAD) * WAD), when)
        # the market after the buy, as a reader would see it
        state = c["market"].functions.readState(router.address).call()
        sy = chain.w3.eth.contract(address=c["sy"], abi=built("PendleERC4626SY")["abi"])
        rate = sy.functions.exchangeRate().call()
        stored = chain.w3.eth.contract(address=c["yt"], abi=pendle_artifact("core/YieldContracts/PendleYieldToken")[
            "abi"]).functions.pyIndexStored().call()
        later = PendleCurve(**{**o.rate_curve.model_dump(), "total_pt": state[0], "total_sy": state[1],
                               "ln_implied_rate": state[8], "timestamp": when, "py_index": max(rate, stored),
                               "sy_exchange_rate": rate})
        sold_at = when + 12
        predicted = float(PendleAmm.of(later, now=sold_at).asset_out_for_pt(got / WAD))
        c["pt"].functions.approve(router.address, got).transact({"from": seller})
        before = dai.functions.balanceOf(seller).call()
        chain.node.rpc("evm_setNextBlockTimestamp", sold_at)
        token_out = (dai.address, 0, dai.address, ZERO, NO_SWAP)
        tx = router.functions.swapExactPtForToken(seller, c["market"].address, got, token_out, EMPTY_LIMIT
                                                  ).transact({"from": seller, "gas": 3_000_000})
        assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
        received = (dai.functions.balanceOf(seller).call() - before) / WAD
    assert received == pytest.approx(predicted, rel=1e-6)
    # a round trip loses the fee twice and the price impact: less than paid, by less than 1 %
    assert 0.99 * amount / WAD < received < amount / WAD
