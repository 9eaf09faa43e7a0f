"""Gas per leg, by protocol and action, measured on the local chain.

``python benchmarks/bench_gas.py`` deploys the devnet world and a Safe, executes one leg of every
kind through the Safe and prints the measured gas beside this table (and the ratio). The table holds
those measurements rounded up; a plan's estimate is the table value times :data:`MARGIN`, and the
devnet test checks every executed batch's gas used against its estimate.

Deposits include their ``approve``. :data:`BATCH_OVERHEAD` is the Safe's ``execTransaction`` plus the
MultiSendCallOnly loop, per batch, cold storage (the first batch of a Safe costs the most).
"""

from __future__ import annotations

__all__ = ["BATCH_OVERHEAD", "GAS", "MARGIN", "leg_cost", "leg_gas"]

#: Stated margin of an estimate over the measured gas: estimates are the table times this.
MARGIN = 1.25

#: Measured gas per leg (benchmarks/bench_gas.py on the devnet world, rounded up to 5,000), keyed by
#: (protocol, action). The devnet's Comet and MetaMorpho are the project's ABI-exact contracts, lighter
#: than the real ones: on mainnet expect more (Comet's supply is about 100k gas).
GAS: dict[tuple[str, str], int] = {
    ("aave-v3", "withdraw"): 160_000,
    ("aave-v3", "exit"): 160_000,
    ("aave-v3", "deposit"): 130_000,
    ("compound-v3", "withdraw"): 25_000,
    ("compound-v3", "exit"): 20_000,
    ("compound-v3", "deposit"): 30_000,
    ("morpho-blue", "withdraw"): 55_000,
    ("morpho-blue", "exit"): 50_000,
    ("morpho-blue", "deposit"): 40_000,
    ("erc4626", "withdraw"): 50_000,
    ("erc4626", "exit"): 45_000,
    ("erc4626", "deposit"): 35_000,
    ("metamorpho", "withdraw"): 135_000,
    ("metamorpho", "exit"): 120_000,
    ("metamorpho", "deposit"): 125_000,
    # the real Pendle V7 router and market (npm @pendle/core-v2 artifacts on the devnet): a sale by
    # swapExactPtForToken, a buy by swapExactTokenForPt (the router's own search: the plan's off-chain
    # guess costs less), each with its approve; a matured PT's redeemPyToToken takes less than a sale
    ("pendle-pt", "withdraw"): 210_000,
    ("pendle-pt", "exit"): 205_000,
    ("pendle-pt", "deposit"): 300_000,
}

#: Safe execTransaction + MultiSendCallOnly per batch (75,364 measured, rounded up).
BATCH_OVERHEAD = 80_000


def leg_gas(protocol: str, action: str) -> int:
    """The estimate for one leg: the measured gas times :data:`MARGIN`."""
    return int(GAS[(protocol, action)] * MARGIN)


def leg_cost(protocol: str, action: str, base_fee_wei: int, native_price: float) -> float:
    """Base currency of one leg's estimated gas at ``base_fee_wei`` and the native token's price."""
    return leg_gas(protocol, action) * base_fee_wei / 1e18 * native_price
