"""Rate impact against the real contracts: the predicted supply rate after depositing x equals the
protocol's own answer, for 50 deposit sizes from 0 to 2x the pool's liquidity (relative error <= 1e-9),
both from the contracts' "what if" views and after real supply transactions.

Every real transaction is mined at the same timestamp as the snapshot block, so no interest accrues
between the read and the deposit: what differs is only our deposit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bondfolio.adapters.base import RAY, SECONDS_PER_YEAR, WAD
from bondfolio.adapters.snapshot import read_snapshot
from bondfolio.solver.curves import curve_for
from devnet.deploy import Deployer, aave_artifact, built
from tests.chain import Chain, reverting

REL = 1e-9
SIZES = 50


def latest_ts(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def same_second(chain: Chain, ts: int) -> None:
    chain.node.rpc("evm_setNextBlockTimestamp", ts)


def market_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(body)
    return path


def test_aave_predicted_rate_equals_strategy_and_real_supply(chain: Chain, tmp_path: Path) -> None:
    aave = chain.world.aave
    token = aave.tokens["USDC"]
    user = chain.w3.eth.accounts[3]
    d = Deployer(chain.w3, user)
    markets = market_file(tmp_path, f'[[markets]]\nprotocol = "aave-v3"\nchain = "devnet"\n'
                                    f'pool = "{aave.pool.address}"\nasset = "{token.address}"\nid = "usdc"\n')
    with reverting(chain):
        big = 10**7 * 10**6
        d.send(token.functions.mint(user, big) if len(token.functions.mint.abi["inputs"]) == 2 else
               token.get_function_by_signature("mint(address,uint256)")(user, big))
        d.send(token.functions.approve(aave.pool.address, big))
        snapshot, _ = read_snapshot(markets, {"devnet": chain.node.url})
        (opp,) = snapshot.opportunities
        curve = curve_for(opp, 0.0)
        assert curve is not None
        ts = latest_ts(chain)
        data = aave.pool.functions.getReserveData(token.address).call()
        strategy_abi = aave_artifact("DefaultReserveInterestRateStrategy")["abi"]
        strategy = chain.w3.eth.contract(address=data[11], abi=strategy_abi)
        variable = chain.w3.eth.contract(address=data[10], abi=aave_artifact("VariableDebtToken")["abi"])
        debt = variable.functions.totalSupply().call()
        cash = token.functions.balanceOf(data[8]).call()
        worst_view = worst_real = 0.0
        # from one unit (Aave rejects a zero supply, and without a transaction the stored rate is stale)
        for units in np.linspace(1, 2 * cash, SIZES).astype(int).tolist():
            x = units / 1e6
            predicted = float(curve.apr(x))
            params = (0, units, 0, 0, debt, 0, 1000, token.address, data[8])
            view = strategy.functions.calculateInterestRates(params).call()[0] / RAY
            worst_view = max(worst_view, abs(predicted / view - 1))
            with reverting(chain):
                same_second(chain, ts)
                if units:
                    d.send(aave.pool.functions.supply(token.address, units, user, 0))
                else:
                    chain.node.rpc("evm_mine")
                real = aave.pool.functions.getReserveData(token.address).call()[2] / RAY
            worst_real = max(worst_real, abs(predicted / real - 1))
    assert worst_view <= REL and worst_real <= REL, (worst_view, worst_real)


def test_morpho_predicted_rate_equals_irm_and_real_supply(chain: Chain, tmp_path: Path) -> None:
    w = chain.world
    morpho = chain.w3.eth.contract(address=w.morpho, abi=built("Morpho")["abi"])
    irm = chain.w3.eth.contract(address=w.morpho_irm, abi=built("AdaptiveCurveIrm")["abi"])
    loan = chain.w3.eth.contract(address=w.morpho_loan, abi=built("TestToken")["abi"])
    key = bytes.fromhex(w.morpho_market_id[2:])
    params = morpho.functions.idToMarketParams(key).call()
    user = chain.w3.eth.accounts[4]
    d = Deployer(chain.w3, user)
    markets = market_file(tmp_path, f'[[markets]]\nprotocol = "morpho-blue"\nchain = "devnet"\n'
                                    f'morpho = "{w.morpho}"\nmarket_id = "{w.morpho_market_id}"\nid = "m"\n')
    with reverting(chain):
        big = 10**8 * WAD
        d.send(loan.functions.mint(user, big))
        d.send(loan.functions.approve(w.morpho, big))
        d.send(morpho.functions.accrueInterest(params))  # the rate at target is current as of this block
        snapshot, _ = read_snapshot(markets, {"devnet": chain.node.url})
        curve = curve_for(snapshot.opportunities[0], 0.0)
        assert curve is not None
        ts = latest_ts(chain)
        market = morpho.functions.market(key).call()
        liquidity = market[0] - market[2]
        worst_view = worst_real = 0.0
        for units in (i * 2 * liquidity // (SIZES - 1) for i in range(SIZES)):
            predicted = float(curve.borrow_apr(units / WAD)) * WAD / SECONDS_PER_YEAR
            hypothetical = [market[0] + units, *market[1:]]
            view = irm.functions.borrowRateView(params, hypothetical).call()
            worst_view = max(worst_view, abs(predicted / view - 1))
            with reverting(chain):
                same_second(chain, ts)
                if units:
                    d.send(morpho.functions.supply(params, units, 0, user, b""))
                else:
                    chain.node.rpc("evm_mine")
                real = irm.functions.borrowRateView(params, morpho.functions.market(key).call()).call()
            worst_real = max(worst_real, abs(predicted / real - 1))
    assert worst_view <= REL and worst_real <= REL, (worst_view, worst_real)


def test_comet_predicted_rate_equals_contract_and_real_supply(chain: Chain) -> None:
    w = chain.world
    comet = chain.w3.eth.contract(address=w.comet, abi=built("CometRates")["abi"])
    base = chain.w3.eth.contract(address=w.comet_base, abi=built("TestToken")["abi"])
    user = chain.w3.eth.accounts[5]
    d = Deployer(chain.w3, user)
    snapshot, _ = read_snapshot(chain.markets, {"devnet": chain.node.url}, block=w.block)
    opp = next(o for o in snapshot.opportunities if o.id == "compound-v3-devnet-usdc")
    curve = curve_for(opp, 0.0)
    assert curve is not None
    supply, borrow = comet.functions.totalSupply().call(), comet.functions.totalBorrow().call()
    worst_view = worst_real = 0.0
    with reverting(chain):
        d.send(base.functions.mint(user, 10**8 * 10**6))
        d.send(base.functions.approve(w.comet, 10**8 * 10**6))
        for units in np.linspace(0, 2 * (supply - borrow), SIZES).astype(int).tolist():
            predicted = float(curve.apr(units / 1e6))
            view = comet.functions.getSupplyRate(borrow * WAD // (supply + units)).call() * SECONDS_PER_YEAR / WAD
            worst_view = max(worst_view, abs(predicted / view - 1))
            with reverting(chain):
                if units:
                    d.send(comet.functions.supply(w.comet_base, units))
                real = comet.functions.getSupplyRate(comet.functions.getUtilization().call()).call()
            worst_real = max(worst_real, abs(predicted / (real * SECONDS_PER_YEAR / WAD) - 1))
    assert worst_view <= REL and worst_real <= REL, (worst_view, worst_real)


def test_decision_reports_apy_before_and_after(chain: Chain, tmp_path: Path) -> None:
    import bondfolio

    snapshot, _ = read_snapshot(chain.markets, {"devnet": chain.node.url}, block=chain.world.block)
    policy = {"name": "impact", "nav": 5_000_000.0, "objective": {"risk_aversion": 0.0},
              "constraints": [{"kind": "max_weight", "max": 0.6}]}
    decision = bondfolio.allocate(snapshot, policy)
    report = decision.to_dict()["rate_impact"]
    rows = {a["id"]: a for a in decision.to_dict()["allocation"]}
    for m in report["markets"]:
        curve = curve_for(next(o for o in snapshot.opportunities if o.id == m["id"]), 0.0)
        assert curve is not None
        assert m["apy_after"] == pytest.approx(float(curve.apy(m["amount"])), rel=1e-12)
        assert rows[m["id"]]["apy"] == m["apy_after"] and rows[m["id"]]["apy_before"] == m["apy_before"]
        if m["amount"] > 1:
            assert m["apy_after"] < m["apy_before"]  # our deposit lowers the rate it earns
    assert abs(report["model_minus_exact_bp"]) <= 0.01 + 1e-9
