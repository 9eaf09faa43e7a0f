"""A real Aave v3 market on a local node, deployed from the compiled artifacts in npm ``@aave/core-v3``.

Order (see shared/PROTOCOLS.md): addresses provider (ACL admin set before the ACL manager), ACL
manager, logic libraries linked into the Pool, Pool and PoolConfigurator behind the provider's
proxies, a mock price oracle and the protocol data provider, token implementations, then per
reserve: a MintableERC20, its price, a DefaultReserveInterestRateStrategy, ``initReserves``,
collateral and borrowing settings and a reserve factor. Finally users supply and borrow, so the
stablecoin reserves have non-zero utilization.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3
from web3.contract import Contract

from devnet.deploy import Deployer, aave_artifact

RAY = 10**27
ZERO = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class ReserveSpec:
    """One reserve to list: token and rate-curve parameters (fractions, converted to ray)."""

    symbol: str
    decimals: int
    price: int  # oracle units (8 decimals)
    optimal: float
    base: float
    slope1: float
    slope2: float
    reserve_factor_bps: int
    ltv_bps: int = 0  # 0: not collateral


DEFAULT_RESERVES = (
    ReserveSpec("USDC", 6, 10**8, 0.90, 0.0, 0.04, 0.60, 1000),
    ReserveSpec("DAI", 18, 10**8, 0.80, 0.0, 0.05, 0.75, 1500),
    ReserveSpec("WETH", 18, 3000 * 10**8, 0.80, 0.01, 0.038, 0.80, 1500, ltv_bps=8000),
)


@dataclass
class AaveMarket:
    """Addresses and contracts of a deployed market."""

    provider: Contract
    pool: Contract
    configurator: Contract
    data_provider: Contract
    oracle: Contract
    tokens: dict[str, Contract] = field(default_factory=dict)
    strategies: dict[str, Contract] = field(default_factory=dict)


def ray(x: float) -> int:
    """A fraction as a ray integer (exact for the decimal literals used here)."""
    return round(x * 10**9) * 10**18


def deploy_market(w3: Web3, reserves: tuple[ReserveSpec, ...] = DEFAULT_RESERVES) -> AaveMarket:
    """Deploy the market and its reserves (no liquidity yet)."""
    d = Deployer(w3)
    admin = d.account
    provider = d.deploy(aave_artifact("PoolAddressesProvider"), "bondfolio-devnet", admin)
    d.send(provider.functions.setACLAdmin(admin))
    acl = d.deploy(aave_artifact("ACLManager"), provider.address)
    d.send(provider.functions.setACLManager(acl.address))
    d.send(acl.functions.addPoolAdmin(admin))

    libs: dict[str, str] = {}
    for name in ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic", "BridgeLogic", "PoolLogic",
                 "ConfiguratorLogic"):
        libs[name] = d.deploy(aave_artifact(name)).address
    libs["FlashLoanLogic"] = d.deploy(aave_artifact("FlashLoanLogic"), libraries=libs).address

    pool_impl = d.deploy(aave_artifact("Pool"), provider.address, libraries=libs)
    d.send(pool_impl.functions.initialize(provider.address))
    d.send(provider.functions.setPoolImpl(pool_impl.address))
    pool = d.at(provider.functions.getPool().call(), aave_artifact("Pool"))

    conf_impl = d.deploy(aave_artifact("PoolConfigurator"), libraries=libs)
    d.send(conf_impl.functions.initialize(provider.address))
    d.send(provider.functions.setPoolConfiguratorImpl(conf_impl.address))
    configurator = d.at(provider.functions.getPoolConfigurator().call(), aave_artifact("PoolConfigurator"))

    oracle = d.deploy(aave_artifact("PriceOracle"))
    d.send(provider.functions.setPriceOracle(oracle.address))
    data_provider = d.deploy(aave_artifact("AaveProtocolDataProvider"), provider.address)
    d.send(provider.functions.setPoolDataProvider(data_provider.address))

    a_impl = d.deploy(aave_artifact("AToken"), pool.address)
    s_impl = d.deploy(aave_artifact("StableDebtToken"), pool.address)
    v_impl = d.deploy(aave_artifact("VariableDebtToken"), pool.address)

    market = AaveMarket(provider, pool, configurator, data_provider, oracle)
    for spec in reserves:
        token = d.deploy(aave_artifact("MintableERC20"), f"{spec.symbol} (devnet)", spec.symbol, spec.decimals)
        d.send(oracle.functions.setAssetPrice(token.address, spec.price))
        strategy = d.deploy(aave_artifact("DefaultReserveInterestRateStrategy"), provider.address,
                            ray(spec.optimal), ray(spec.base), ray(spec.slope1), ray(spec.slope2),
                            0, 0, 0, 0, ray(0.2))
        d.send(configurator.functions.initReserves([(
            a_impl.address, s_impl.address, v_impl.address, spec.decimals, strategy.address, token.address,
            admin, ZERO, f"Aave devnet {spec.symbol}", f"a{spec.symbol}", f"Aave devnet variable debt {spec.symbol}",
            f"variableDebt{spec.symbol}", f"Aave devnet stable debt {spec.symbol}", f"stableDebt{spec.symbol}", b"",
        )]))
        if spec.ltv_bps:
            d.send(configurator.functions.configureReserveAsCollateral(
                token.address, spec.ltv_bps, spec.ltv_bps + 500, 10500))
        d.send(configurator.functions.setReserveBorrowing(token.address, True))
        d.send(configurator.functions.setReserveFactor(token.address, spec.reserve_factor_bps))
        market.tokens[spec.symbol] = token
        market.strategies[spec.symbol] = strategy
    return market


def supply(w3: Web3, market: AaveMarket, symbol: str, user: str, amount: int) -> None:
    """Mint ``amount`` (token units, integer) to ``user`` and supply it to the pool."""
    d = Deployer(w3, user)
    token = market.tokens[symbol]
    d.send(token.functions.mint(user, amount) if _has_mint_to(token) else token.functions.mint(amount))
    d.send(token.functions.approve(market.pool.address, amount))
    d.send(market.pool.functions.supply(token.address, amount, user, 0))


def borrow(w3: Web3, market: AaveMarket, symbol: str, user: str, amount: int) -> None:
    """Borrow ``amount`` at the variable rate against ``user``'s collateral."""
    Deployer(w3, user).send(market.pool.functions.borrow(market.tokens[symbol].address, amount, 2, 0, user))


def _has_mint_to(token: Contract) -> bool:
    return any(f.get("name") == "mint" and len(f.get("inputs", [])) == 2 for f in token.abi)


def seed_liquidity(w3: Web3, market: AaveMarket) -> None:
    """Suppliers and a borrower: USDC about 62 % utilized, DAI about 45 %."""
    lender, borrower = w3.eth.accounts[1], w3.eth.accounts[2]
    supply(w3, market, "USDC", lender, 8_000_000 * 10**6)
    supply(w3, market, "DAI", lender, 5_000_000 * 10**18)
    supply(w3, market, "WETH", borrower, 10_000 * 10**18)  # 30 M of collateral
    borrow(w3, market, "USDC", borrower, 5_000_000 * 10**6)
    borrow(w3, market, "DAI", borrower, 2_250_000 * 10**18)
