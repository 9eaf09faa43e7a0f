"""A real local chain for chain tests: anvil from npm, the devnet world built once per session.

Tests that change chain state wrap themselves in :func:`reverting` (``evm_snapshot``/``evm_revert``),
so every test sees the same world.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from devnet.anvil import Anvil
from devnet.world import World, build_world


@dataclass
class Chain:
    node: Anvil
    w3: Web3
    world: World
    markets: Path


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    node = Anvil.start()
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        world = build_world(w3)
        markets = tmp_path_factory.mktemp("devnet") / "markets.toml"
        markets.write_text(world.markets_toml())
        yield Chain(node, w3, world, markets)
    finally:
        node.stop()


@contextlib.contextmanager
def reverting(chain: Chain) -> Iterator[None]:
    """Run a block of state changes, then put the chain back as it was."""
    snap = chain.node.rpc("evm_snapshot")
    try:
        yield
    finally:
        chain.node.rpc("evm_revert", snap)
