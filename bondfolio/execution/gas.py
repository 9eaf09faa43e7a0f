"""Gas per leg, by protocol and action, measured on the local chain.

``python benchmarks/bench_gas.py`` deploys the devnet world and a Safe, executes one leg of every
kind through the Safe and prints the measured gas beside this table (and the ratio). The table holds
those measurements rounded up; a plan's estimate is the table value times :data:`MARGIN`, and the
devnet test checks every executed batch's gas used against its estimate.

Deposits include their ``approve``. :data:`BATCH_OVERHEAD` is the Safe's ``execTransaction`` plus the
MultiSendCallOnly loop, per batch, cold storage (the first batch of a Safe costs the most).
"""

from __future__ import annotations

__all__ = ["BATCH_OVERHEAD", "GAS", "MARGIN", "leg_gas"]

#: Stated margin of an estimate over the measured gas: estimates are the table times this.
MARGIN = 1.25

#: Measured gas per leg (see benchmarks/bench_gas.py), keyed by (protocol, action).
GAS: dict[tuple[str, str], int] = {
    ("aave-v3", "deposit"): 200_000,
    ("aave-v3", "withdraw"): 160_000,
    ("aave-v3", "exit"): 160_000,
    ("compound-v3", "deposit"): 90_000,
    ("compound-v3", "withdraw"): 60_000,
    ("compound-v3", "exit"): 60_000,
    ("morpho-blue", "deposit"): 110_000,
    ("morpho-blue", "withdraw"): 90_000,
    ("morpho-blue", "exit"): 90_000,
    ("erc4626", "deposit"): 110_000,
    ("erc4626", "withdraw"): 80_000,
    ("erc4626", "exit"): 80_000,
    ("metamorpho", "deposit"): 250_000,
    ("metamorpho", "withdraw"): 250_000,
    ("metamorpho", "exit"): 250_000,
}

#: Safe execTransaction + MultiSendCallOnly per batch (cold nonce and signature check).
BATCH_OVERHEAD = 80_000


def leg_gas(protocol: str, action: str) -> int:
    """The estimate for one leg: the measured gas times :data:`MARGIN`."""
    return int(GAS[(protocol, action)] * MARGIN)
