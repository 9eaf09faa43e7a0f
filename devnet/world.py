"""The devnet world: one of each protocol the readers support, with live utilization, on a local node.

``build_world(w3)`` deploys (about 3 s on anvil):

- Multicall3 at its canonical address (project-written, see ``contracts/Multicall3.sol``);
- a real Aave v3 market (npm ``@aave/core-v3`` artifacts): USDC, DAI, WETH; USDC and DAI borrowed;
- a Comet-ABI market (project-written ``CometRates``) on a USDC-like token, 70 % utilized;
- Morpho Blue (compiled from npm ``@morpho-org/morpho-blue``) with the project-written adaptive-curve
  IRM, one USDC market against WETH collateral, borrowed, with a fee, and time passed so the rate at
  target has adapted;
- a second Morpho market and a MetaMorpho-ABI vault (project-written ``MetaMorphoVault``) allocating to
  both markets under per-market caps;
- an OpenZeppelin ERC-4626 savings vault over DAI whose share price grew over a week;
- the real Pendle V7 (npm ``@pendle/core-v2`` artifacts, :mod:`devnet.pendle`): two PT markets over an SY
  (project-written ``PendleERC4626SY``) wrapping the savings vault, expiring in about 90 and 180 days at
  implied APYs of 8 % and 9 %, seeded through the real router.

It returns a :class:`World` with every address, and ``markets_toml()`` writes the MARKETS.toml that
``bondfolio snapshot`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3

from devnet.aave import AaveMarket, deploy_market, seed_liquidity
from devnet.deploy import Deployer, built
from devnet.pendle import DAY, create_market, deploy_pendle, seed_market

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
YEAR = 365 * 24 * 3600
WAD = 10**18


def per_second(apr: float) -> int:
    """An annual rate as Comet's per-second rate scaled by 1e18 (truncated, as Comet's config does)."""
    return int(apr * WAD) // YEAR


@dataclass
class World:
    """Addresses of everything deployed."""

    aave: AaveMarket
    comet: str
    comet_base: str
    morpho: str
    morpho_irm: str
    morpho_market_id: str
    morpho_loan: str
    vault: str
    vault_asset: str
    vault_lookback_blocks: int
    pendle_markets: dict[str, str] = field(default_factory=dict)
    block: int = 0
    metamorpho: str = ""
    morpho_market_id2: str = ""
    pendle_router: str = ""
    pendle_oracle: str = ""
    pendle_sy: str = ""

    def markets_toml(self, lookback_blocks: int | None = None) -> str:
        """A MARKETS.toml naming every market of the world (chain ``devnet``); ``lookback_blocks`` for
        the vaults' yield windows (default: back to the start of the world's week of growth)."""
        a = self.aave
        lookback = self.vault_lookback_blocks if lookback_blocks is None else lookback_blocks
        lines = [
            "# Markets on the local devnet world (devnet/world.py).",
            "",
            "[chains.devnet]", "chain_id = 31337", "native_price = 3000.0   # USD per ETH, for gas costs", "",
            "[[markets]]", 'protocol = "aave-v3"', 'chain = "devnet"', f'pool = "{a.pool.address}"',
            f'asset = "{a.tokens["USDC"].address}"', 'id = "aave-v3-devnet-usdc"', 'tags = ["oracle:mock"]', "",
            "[[markets]]", 'protocol = "aave-v3"', 'chain = "devnet"', f'pool = "{a.pool.address}"',
            f'asset = "{a.tokens["DAI"].address}"', 'id = "aave-v3-devnet-dai"', "",
            "[[markets]]", 'protocol = "compound-v3"', 'chain = "devnet"', f'comet = "{self.comet}"',
            'id = "compound-v3-devnet-usdc"', "",
            "[[markets]]", 'protocol = "morpho-blue"', 'chain = "devnet"', f'morpho = "{self.morpho}"',
            f'market_id = "{self.morpho_market_id}"', 'id = "morpho-blue-devnet-weth-usdc-86"', "risk_score = 0.25",
            "",
            "[[markets]]", 'protocol = "erc4626"', 'chain = "devnet"', f'vault = "{self.vault}"',
            f"lookback_blocks = {lookback}", 'id = "savings-devnet-dai"', 'tier = "core"', "",
            "[[markets]]", 'protocol = "metamorpho"', 'chain = "devnet"', f'vault = "{self.metamorpho}"',
            f"lookback_blocks = {lookback}", 'id = "metamorpho-devnet-usdc"', "",
        ]
        for name, address in self.pendle_markets.items():
            lines += ["[[markets]]", 'protocol = "pendle-pt"', 'chain = "devnet"', f'market = "{address}"',
                      f'router = "{self.pendle_router}"', f'id = "pendle-pt-devnet-{name}"', ""]
        return "\n".join(lines)


def place_multicall(w3: Web3) -> None:
    """Deploy Multicall3 and copy its runtime code to the canonical address."""
    contract = Deployer(w3).deploy(built("Multicall3"))
    code = w3.eth.get_code(contract.address)
    w3.provider.make_request("anvil_setCode", [MULTICALL3, "0x" + bytes(code).hex()])


def advance(w3: Web3, seconds: int, blocks: int = 1) -> None:
    """Move the chain's clock forward and mine ``blocks`` blocks."""
    w3.provider.make_request("evm_increaseTime", [seconds])
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])


def build_world(w3: Web3) -> World:
    d = Deployer(w3)
    admin, lender, borrower = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[2]
    place_multicall(w3)

    aave = deploy_market(w3)
    seed_liquidity(w3, aave)

    # Compound v3 (Comet ABI): supply kink 85 %, 3.5 %/yr below, 90 %/yr above; borrow 1 % + 4 %/yr, 120 %/yr above
    usdc = d.deploy(built("TestToken"), "USD Coin (devnet)", "USDC", 6)
    comet = d.deploy(built("CometRates"), usdc.address, [
        int(0.85 * WAD), per_second(0.035), per_second(0.90), 0,
        int(0.85 * WAD), per_second(0.04), per_second(1.20), per_second(0.01),
    ])
    d.send(comet.functions.setTotals(10_000_000 * 10**6, 7_000_000 * 10**6))
    d.send(usdc.functions.mint(comet.address, 3_000_000 * 10**6))  # its cash: supply less borrows

    # Morpho Blue with the adaptive-curve IRM
    morpho = d.deploy(built("Morpho"), admin)
    irm = d.deploy(built("AdaptiveCurveIrm"), morpho.address)
    loan = d.deploy(built("TestToken"), "USD Coin (Morpho devnet)", "USDC", 18)
    collateral = d.deploy(built("TestToken"), "Wrapped Ether (Morpho devnet)", "WETH", 18)
    oracle = d.deploy(built("OracleMock"))
    d.send(oracle.functions.setPrice(3000 * 10**36))  # 1 collateral unit = 3000 loan units (both 18 decimals)
    lltv = 86 * 10**16
    d.send(morpho.functions.enableIrm(irm.address))
    d.send(morpho.functions.enableLltv(lltv))
    params = (loan.address, collateral.address, oracle.address, irm.address, lltv)
    d.send(morpho.functions.createMarket(params))
    d.send(morpho.functions.setFeeRecipient(admin))
    d.send(morpho.functions.setFee(params, 10 * 10**16))  # 10 % fee
    market_id = Web3.keccak(w3.codec.encode(["(address,address,address,address,uint256)"], [params]))
    for who, amount in ((lender, 4_000_000 * WAD), (borrower, 0)):
        if amount:
            d.send(loan.functions.mint(who, amount))
            d.send(loan.functions.approve(morpho.address, amount), who)
            d.send(morpho.functions.supply(params, amount, 0, who, b""), who)
    d.send(collateral.functions.mint(borrower, 2_000 * WAD))
    d.send(collateral.functions.approve(morpho.address, 2_000 * WAD), borrower)
    d.send(morpho.functions.supplyCollateral(params, 2_000 * WAD, borrower, b""), borrower)
    d.send(morpho.functions.borrow(params, 3_400_000 * WAD, 0, borrower, borrower), borrower)  # 85 % utilized

    # a second Morpho market (91.5 % LLTV), and a MetaMorpho-ABI vault allocating to both under caps
    lltv2 = 915 * 10**15
    d.send(morpho.functions.enableLltv(lltv2))
    params2 = (loan.address, collateral.address, oracle.address, irm.address, lltv2)
    d.send(morpho.functions.createMarket(params2))
    market_id2 = Web3.keccak(w3.codec.encode(["(address,address,address,address,uint256)"], [params2]))
    d.send(loan.functions.mint(lender, 1_000_000 * WAD))
    d.send(loan.functions.approve(morpho.address, 1_000_000 * WAD), lender)
    d.send(morpho.functions.supply(params2, 1_000_000 * WAD, 0, lender, b""), lender)
    d.send(collateral.functions.mint(borrower, 500 * WAD))  # collateral is per market in Morpho Blue
    d.send(collateral.functions.approve(morpho.address, 500 * WAD), borrower)
    d.send(morpho.functions.supplyCollateral(params2, 500 * WAD, borrower, b""), borrower)
    d.send(morpho.functions.borrow(params2, 600_000 * WAD, 0, borrower, borrower), borrower)
    metamorpho = d.deploy(built("MetaMorphoVault"), morpho.address, loan.address, "MetaMorpho USDC (devnet)", "mmUSDC")
    d.send(metamorpho.functions.setCap(market_id, 1_000_000 * WAD))
    d.send(metamorpho.functions.setCap(market_id2, 500_000 * WAD))
    d.send(loan.functions.mint(lender, 1_200_000 * WAD))
    d.send(loan.functions.approve(metamorpho.address, 1_200_000 * WAD), lender)
    d.send(metamorpho.functions.deposit(1_200_000 * WAD, lender), lender)  # 1 M to market 1, 0.2 M to market 2

    # ERC-4626 savings vault over Aave's DAI token; a week of yield dripped in
    dai = aave.tokens["DAI"]
    vault = d.deploy(built("TestVault"), dai.address, "Savings DAI (devnet)", "sDAI")
    deposit = 1_000_000 * WAD
    d.send(dai.functions.mint(lender, deposit), lender)
    d.send(dai.functions.approve(vault.address, deposit), lender)
    d.send(vault.functions.deposit(deposit, lender), lender)
    start_block = w3.eth.block_number
    # the real Pendle V7 (its core, router and oracle), and an SY over the savings vault
    pendle = deploy_pendle(w3)
    sy = d.deploy(built("PendleERC4626SY"), "SY Savings DAI (devnet)", "SY-sDAI", vault.address)

    advance(w3, 7 * 86400, blocks=5)  # a week passes: Morpho's rate at target adapts
    d.send(dai.functions.mint(vault.address, 1_000 * WAD))  # 1,000 DAI of yield on 1,000,000 over a week
    # the real Pendle V7's PT markets over the SY, implied APY 8 % and 9 % (seeded after the vault's week
    # of yield, so the seed deposits leave its share price as it is)
    today = w3.eth.get_block("latest")["timestamp"] // DAY
    pendle_markets: dict[str, str] = {}
    for name, days, apy in (("sdai-90d", 90, 0.08), ("sdai-180d", 180, 0.09)):
        market = create_market(pendle, sy, (today + days) * DAY, apy)
        seed_market(pendle, market, dai, lender, 400_000 * WAD)
        pendle_markets[name] = market.market.address

    d.send(morpho.functions.accrueInterest(params))
    d.send(morpho.functions.accrueInterest(params2))
    advance(w3, 12, blocks=1)
    block = w3.eth.block_number
    return World(aave, comet.address, usdc.address, morpho.address, irm.address,
                 "0x" + market_id.hex().removeprefix("0x"), loan.address, vault.address, dai.address,
                 block - start_block, pendle_markets, block, metamorpho.address,
                 "0x" + market_id2.hex().removeprefix("0x"), pendle.router.address, pendle.oracle.address, sy.address)
