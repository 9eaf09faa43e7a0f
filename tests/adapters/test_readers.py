"""Readers against real contracts on anvil: every number equals the contract's own answer."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from web3 import Web3

from bondfolio.adapters.base import RAY, SECONDS_PER_YEAR, WAD, apr_to_apy
from bondfolio.adapters.snapshot import read_snapshot
from devnet.deploy import aave_artifact, built
from tests.chain import Chain

NOBODY = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture(scope="module")
def snap(chain: Chain):  # type: ignore[no-untyped-def]
    snapshot, report = read_snapshot(chain.markets, {"devnet": chain.node.url})
    return {o.id: o for o in snapshot.opportunities}, report, snapshot


def compounded(numerator: int, denominator: int, periods: int) -> float:
    """(1 + n/(d*periods))^periods - 1 in 50-digit decimal arithmetic: an independent reference
    (in floats, 1 + x loses ~1e-7 of x's precision for per-second rates)."""
    with localcontext() as ctx:
        ctx.prec = 50
        return float((1 + Decimal(numerator) / Decimal(denominator) / periods) ** periods - 1)


def contract(chain: Chain, address: str, name: str, aave: bool = False):  # type: ignore[no-untyped-def]
    abi = (aave_artifact(name) if aave else built(name))["abi"]
    return chain.w3.eth.contract(address=address, abi=abi)


def test_aave_reserve_matches_pool(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    opps, report, _ = snap
    aave = chain.world.aave
    usdc = aave.tokens["USDC"].address
    data = aave.pool.functions.getReserveData(usdc).call()
    details = report["details"]["aave-v3-devnet-usdc"]
    assert details["liquidity_rate_ray"] == data[2]  # currentLiquidityRate, exactly
    o = opps["aave-v3-devnet-usdc"]
    assert o.apy == apr_to_apy(data[2] / RAY)
    # Aave's UI convention, computed independently: (1 + r/secs)^secs - 1 with r = currentLiquidityRate / 1e27
    assert o.apy == pytest.approx(compounded(data[2], RAY, SECONDS_PER_YEAR), rel=1e-12)
    assert data[2] / RAY == pytest.approx(0.04 * (5 / 8) / 0.9 * (5 / 8) * 0.9, rel=1e-15)  # the curve by hand
    cash = aave.tokens["USDC"].functions.balanceOf(data[8]).call()
    assert o.available_liquidity == cash / 1e6 == 3_000_000.0
    strategy = contract(chain, data[11], "DefaultReserveInterestRateStrategy", aave=True)
    curve = o.rate_curve
    assert curve is not None and curve.model == "kinked" and curve.applies_to == "borrow"
    assert curve.kink == strategy.functions.OPTIMAL_USAGE_RATIO().call() / RAY == 0.9
    assert curve.slope_low == strategy.functions.getVariableRateSlope1().call() / RAY == 0.04
    assert curve.slope_high == 0.6 and curve.reserve_factor == 0.1
    debt = contract(chain, data[10], "VariableDebtToken", aave=True).functions.totalSupply().call()
    assert curve.total_borrow == debt / 1e6 and debt > 5_000_000 * 10**6  # a week of interest accrued
    assert curve.total_supply == (debt + cash) / 1e6
    assert details["layout"] == "3.0" and o.depositable


def test_aave_frozen_reserve_flagged_not_depositable(chain: Chain) -> None:
    from tests.chain import reverting

    aave = chain.world.aave
    with reverting(chain):
        tx = aave.configurator.functions.setReserveFreeze(aave.tokens["DAI"].address, True).transact(
            {"from": chain.w3.eth.accounts[0]})
        chain.w3.eth.wait_for_transaction_receipt(tx)
        snapshot, _ = read_snapshot(chain.markets, {"devnet": chain.node.url})
    dai = next(o for o in snapshot.opportunities if o.id == "aave-v3-devnet-dai")
    assert dai.depositable is False


def test_compound_matches_comet(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    opps, report, _ = snap
    comet = contract(chain, chain.world.comet, "CometRates")
    utilization = comet.functions.getUtilization().call()
    rate = comet.functions.getSupplyRate(utilization).call()
    assert report["details"]["compound-v3-devnet-usdc"]["supply_rate_per_second"] == rate
    o = opps["compound-v3-devnet-usdc"]
    assert o.apy == pytest.approx(compounded(rate * SECONDS_PER_YEAR, WAD, SECONDS_PER_YEAR), rel=1e-12)
    # 70 % utilized, below the 85 % kink: supply APR = 3.5 % x 0.7 (up to the per-second truncation)
    assert rate * SECONDS_PER_YEAR / WAD == pytest.approx(0.035 * 0.7, rel=1e-9)
    assert o.tvl == 10_000_000.0 and o.available_liquidity == 3_000_000.0
    assert o.rate_curve is not None and o.rate_curve.applies_to == "supply" and o.rate_curve.kink == 0.85


def test_morpho_matches_irm(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    opps, report, _ = snap
    w = chain.world
    morpho = contract(chain, w.morpho, "Morpho")
    irm = contract(chain, w.morpho_irm, "AdaptiveCurveIrm")
    key = bytes.fromhex(w.morpho_market_id[2:])
    market = morpho.functions.market(key).call()
    params = morpho.functions.idToMarketParams(key).call()
    borrow_rate = irm.functions.borrowRateView(params, market).call()
    assert report["details"]["morpho-blue-devnet-weth-usdc-86"]["borrow_rate_per_second"] == borrow_rate
    u = market[2] / market[0]
    o = opps["morpho-blue-devnet-weth-usdc-86"]
    assert o.apy == pytest.approx(math.expm1(borrow_rate / WAD * SECONDS_PER_YEAR * u * 0.9), rel=1e-12)
    curve = o.rate_curve
    assert curve is not None and curve.model == "adaptive" and curve.fee == 0.1
    at_target = irm.functions.rateAtTarget(key).call()
    assert curve.rate_at_target == pytest.approx(at_target * SECONDS_PER_YEAR / WAD, rel=1e-15)
    assert 0.03 < curve.rate_at_target < 0.04  # adapted down from 4 % over a week below target
    assert o.risk_score == 0.25  # MARKETS.toml override


def test_vault_yield_from_share_price_growth(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    opps, report, _ = snap
    vault = contract(chain, chain.world.vault, "TestVault")
    d = report["details"]["savings-devnet-dai"]
    block = chain.world.block
    assert d["share_price_now"] == vault.functions.convertToAssets(WAD).call(block_identifier=block)
    assert d["share_price_then"] == vault.functions.convertToAssets(WAD).call(
        block_identifier=block - chain.world.vault_lookback_blocks)
    o = opps["savings-devnet-dai"]
    growth = d["share_price_now"] / d["share_price_then"]
    assert o.apy == pytest.approx(growth ** (SECONDS_PER_YEAR / d["seconds"]) - 1, rel=1e-12)
    assert o.price == pytest.approx(1.001, rel=1e-15) and o.tier.value == "core"
    assert o.depositable and d["max_deposit"] == vault.functions.maxDeposit(NOBODY).call() > 0
    assert o.available_liquidity is None  # no holder given: unknown


def test_vault_holder_max_withdraw(chain: Chain, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lender = chain.w3.eth.accounts[1]
    path = tmp_path / "vault.toml"
    path.write_text(f'[[markets]]\nprotocol = "erc4626"\nchain = "devnet"\nvault = "{chain.world.vault}"\n'
                    f'holder = "{lender}"\nlookback_blocks = {chain.world.vault_lookback_blocks}\n')
    snapshot, _ = read_snapshot(path, {"devnet": chain.node.url}, block=chain.world.block)
    vault = contract(chain, chain.world.vault, "TestVault")
    expected = vault.functions.maxWithdraw(lender).call(block_identifier=chain.world.block)
    assert snapshot.opportunities[0].available_liquidity == float(Fraction(expected, 10**18))
    assert float(Fraction(expected, 10**18)) == pytest.approx(1_001_000, rel=1e-9)


def test_pendle_pt_price_and_duration(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    # the real Pendle V7 market (more in test_pendle_market.py): implied APY 9 % as seeded, the PT priced
    # by Pendle's formula exp(-lnImpliedRate * t), the asset read from the SY (the vault's DAI)
    # (seeded a few seconds after the market was made: the rate is 9 % to within 1e-7)
    opps, report, snapshot = snap
    o = opps["pendle-pt-devnet-sdai-180d"]
    d = report["details"]["pendle-pt-devnet-sdai-180d"]
    now = int(snapshot.as_of.timestamp.timestamp())
    years = (d["expiry"] - now) / SECONDS_PER_YEAR
    rate = d["ln_implied_rate"] / 1e18
    assert o.apy == pytest.approx(math.expm1(rate), rel=1e-15) and o.apy == pytest.approx(0.09, abs=1e-7)
    assert o.duration == pytest.approx(years, rel=1e-12)
    assert o.price == pytest.approx(math.exp(-rate * years), rel=1e-12)
    assert o.maturity is not None and o.maturity > snapshot.as_of.timestamp and o.asset == "DAI"
    assert o.execution is not None and o.execution.asset == chain.world.aave.tokens["DAI"].address


def test_one_block_three_rounds(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    _, report, snapshot = snap
    info = report["devnet"]
    assert info["rounds"] == 3 and info["multicall3"]
    assert info["requests"] == 5  # pin + 3 rounds + hash check
    block = snapshot.as_of.chains["devnet"]
    assert block.block_number == chain.world.block
    assert block.block_hash == chain.w3.eth.get_block(chain.world.block)["hash"].to_0x_hex()


def test_snapshot_at_older_block(chain: Chain) -> None:
    older = chain.world.block - 3
    snapshot, _ = read_snapshot(chain.markets, {"devnet": chain.node.url}, block=older)
    assert snapshot.as_of.chains["devnet"].block_number == older
    aave = chain.world.aave
    data = aave.pool.functions.getReserveData(aave.tokens["USDC"].address).call(block_identifier=older)
    usdc = next(o for o in snapshot.opportunities if o.id == "aave-v3-devnet-usdc")
    assert usdc.apy == apr_to_apy(data[2] / RAY)


def test_without_multicall_same_numbers_batched_json_rpc(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    from bondfolio.adapters.base import MULTICALL3
    from tests.chain import reverting

    opps, _, _ = snap
    with reverting(chain):
        chain.node.rpc("anvil_setCode", MULTICALL3, "0x")
        chain.node.rpc("evm_mine")
        snapshot, report = read_snapshot(chain.markets, {"devnet": chain.node.url}, block=chain.world.block)
    assert report["devnet"]["multicall3"] is False and report["devnet"]["rounds"] == 3
    for o in snapshot.opportunities:
        assert o.apy == opps[o.id].apy and o.price == opps[o.id].price


def test_checksum_addresses_in_market_keys(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    opps, _, _ = snap
    assert opps["compound-v3-devnet-usdc"].market == Web3.to_checksum_address(chain.world.comet)


def test_metamorpho_allocation_and_yield_match_contracts(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    opps, report, _ = snap
    w = chain.world
    vault = contract(chain, w.metamorpho, "MetaMorphoVault")
    morpho = contract(chain, w.morpho, "Morpho")
    irm = contract(chain, w.morpho_irm, "AdaptiveCurveIrm")
    o = opps["metamorpho-devnet-usdc"]
    total = vault.functions.totalAssets().call()
    assert o.tvl == float(Fraction(total, 10**18))  # correctly rounded (int / 1e18 rounds twice)
    details = report["details"]["metamorpho-devnet-usdc"]
    income, free = 0.0, 0
    for market_id, entry in zip((w.morpho_market_id, w.morpho_market_id2), details["markets"], strict=True):
        key = bytes.fromhex(market_id[2:])
        market = morpho.functions.market(key).call()
        shares = morpho.functions.position(key, w.metamorpho).call()[0]
        assets = shares * (market[0] + 1) // (market[1] + 10**6)  # Morpho's virtual shares and assets
        assert entry["assets"] == assets and entry["cap"] == vault.functions.config(key).call()[0]
        rate = irm.functions.borrowRateView(morpho.functions.idToMarketParams(key).call(), market).call()
        supply_apy = math.expm1(rate / WAD * SECONDS_PER_YEAR * market[2] / market[0] * (1 - market[5] / WAD))
        assert entry["supply_apy"] == pytest.approx(supply_apy, rel=1e-12)
        income += assets * supply_apy
        free += min(assets, market[0] - market[2])
    assert details["markets"][0]["assets"] == pytest.approx(1_000_000 * WAD, rel=1e-3)  # filled to its cap first
    assert o.apy == pytest.approx(income / total, rel=1e-12)
    assert o.available_liquidity == pytest.approx(free / 1e18, rel=1e-15)


def test_aave_v31_strategy_layout(chain: Chain) -> None:
    """The real v3.1+ strategy (compiled from npm @aave-dao/aave-v3-origin) attached to a reserve: the
    reader detects the layout and reads getInterestRateData(asset), in ray, exactly."""
    from devnet.deploy import Deployer
    from tests.chain import reverting

    aave = chain.world.aave
    usdc = aave.tokens["USDC"].address
    d = Deployer(chain.w3)
    with reverting(chain):
        provider = d.deploy(aave_artifact("PoolAddressesProvider"), "v31-strategy-test", d.account)
        d.send(provider.functions.setAddress(b"POOL_CONFIGURATOR".ljust(32, b"\0"), d.account))
        strategy = d.deploy(built("DefaultReserveInterestRateStrategyV2"), provider.address)
        setter = strategy.get_function_by_signature("setInterestRateParams(address,(uint16,uint32,uint32,uint32))")
        d.send(setter(usdc, (9200, 25, 550, 6000)))  # bps: optimal 92 %, base 0.25 %, slopes 5.5 % and 60 %
        d.send(aave.configurator.functions.setReserveInterestRateStrategyAddress(usdc, strategy.address))
        only_usdc = chain.markets.with_name("aave-usdc.toml")
        only_usdc.write_text(f'[[markets]]\nprotocol = "aave-v3"\nchain = "devnet"\npool = "{aave.pool.address}"\n'
                             f'asset = "{usdc}"\nid = "aave-v3-devnet-usdc"\n')
        snapshot, report = read_snapshot(only_usdc, {"devnet": chain.node.url})
        ray_data = strategy.functions.getInterestRateData(usdc).call()
    o = next(x for x in snapshot.opportunities if x.id == "aave-v3-devnet-usdc")
    assert report["details"]["aave-v3-devnet-usdc"]["layout"] == "3.1+"
    curve = o.rate_curve
    assert curve is not None and curve.model == "kinked"
    assert (curve.kink, curve.base, curve.slope_low, curve.slope_high) == tuple(v / RAY for v in ray_data)
    assert (curve.kink, curve.base, curve.slope_low, curve.slope_high) == (0.92, 0.0025, 0.055, 0.6)


def test_pendle_curve_is_the_market_state(chain: Chain, snap) -> None:  # type: ignore[no-untyped-def]
    from devnet.pendle import pendle_artifact

    opps, _, snapshot = snap
    o = opps["pendle-pt-devnet-sdai-180d"]
    market = chain.w3.eth.contract(address=chain.world.pendle_markets["sdai-180d"],
                                   abi=pendle_artifact("core/Market/PendleMarketV7")["abi"])
    state = market.functions.readState(chain.world.pendle_router).call(block_identifier=chain.world.block)
    curve = o.rate_curve
    assert curve is not None and curve.model == "pendle"
    assert (curve.total_pt, curve.total_sy, curve.scalar_root, curve.expiry, curve.ln_fee_rate_root,
            curve.reserve_fee_percent, curve.ln_implied_rate) == (state[0], state[1], state[4], state[5], state[6],
                                                                 state[7], state[8])
    assert curve.timestamp == int(snapshot.as_of.timestamp.timestamp())
