"""A real Safe 1.4.1 on the devnet, from npm ``@safe-global/safe-contracts`` (test tooling: sends transactions).

``deploy_safe(w3, owner)`` deploys the Safe singleton, SafeProxyFactory, MultiSendCallOnly and the
CompatibilityFallbackHandler from the package's compiled artifacts and creates a 1-of-1 Safe proxy
for ``owner`` (``createProxyWithNonce`` with ``setup``). ``execute(w3, safe, owner, to, data, operation)``
runs a transaction through ``execTransaction`` with the owner's pre-validated signature (``r`` = the
owner, ``s`` = 0, ``v`` = 1: valid when the owner sends it). This is test code: the product never
signs or sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from devnet.deploy import NODE, Deployer, artifact, built
from devnet.world import World

ZERO = "0x0000000000000000000000000000000000000000"
WAD = 10**18
USDC = 10**6
SAFE_ARTIFACTS = NODE / "@safe-global" / "safe-contracts" / "build" / "artifacts" / "contracts"


def safe_artifact(path: str) -> dict[str, Any]:
    """An artifact of npm ``@safe-global/safe-contracts`` by its path under ``contracts/``."""
    return artifact(SAFE_ARTIFACTS / path)


@dataclass
class SafeWorld:
    safe: Contract
    singleton: str
    factory: str
    multisend: str
    fallback_handler: str
    owner: str


def deploy_safe(w3: Web3, owner: str, salt: int = 0) -> SafeWorld:
    d = Deployer(w3, owner)
    singleton = d.deploy(safe_artifact("Safe.sol/Safe.json"))
    factory = d.deploy(safe_artifact("proxies/SafeProxyFactory.sol/SafeProxyFactory.json"))
    multisend = d.deploy(safe_artifact("libraries/MultiSendCallOnly.sol/MultiSendCallOnly.json"))
    handler = d.deploy(safe_artifact("handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json"))
    setup = singleton.encode_abi("setup", args=[[owner], 1, ZERO, b"", handler.address, ZERO, 0, ZERO])
    receipt = d.send(factory.functions.createProxyWithNonce(singleton.address, setup, salt))
    (event,) = factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)
    safe = w3.eth.contract(address=event.args.proxy, abi=safe_artifact("Safe.sol/Safe.json")["abi"])
    return SafeWorld(safe, singleton.address, factory.address, multisend.address, handler.address, owner)


def prevalidated_signature(owner: str) -> bytes:
    """The signature a Safe accepts from an owner who sends the transaction itself."""
    return bytes(12) + bytes.fromhex(owner[2:]) + bytes(32) + bytes([1])


def execute(w3: Web3, world: SafeWorld, to: str, data: bytes, operation: int = 0, value: int = 0) -> Any:
    """``execTransaction`` from the owner (no refund, safeTxGas 0: a failing inner call reverts it)."""
    fn = world.safe.functions.execTransaction(to, value, data, operation, 0, 0, 0, ZERO, ZERO,
                                              prevalidated_signature(world.owner))
    return Deployer(w3, world.owner).send(fn)


def fund_safe(w3: Web3, world: World, sw: SafeWorld) -> None:
    """Give the Safe positions in every market: Aave USDC 300k, Comet 200k (and 100k idle), Morpho Blue
    300k, MetaMorpho 100k (its second market's cap raised to 2M), the DAI savings vault 200k."""
    admin = w3.eth.accounts[0]
    d = Deployer(w3, admin)
    safe = sw.safe.address
    aave = world.aave
    a_usdc = aave.tokens["USDC"]
    d.send(a_usdc.functions.mint(admin, 300_000 * USDC))
    d.send(a_usdc.functions.approve(aave.pool.address, 300_000 * USDC))
    d.send(aave.pool.functions.supply(a_usdc.address, 300_000 * USDC, safe, 0))
    comet_usdc = w3.eth.contract(address=world.comet_base, abi=built("TestToken")["abi"])
    comet = w3.eth.contract(address=world.comet, abi=built("CometRates")["abi"])
    d.send(comet_usdc.functions.mint(admin, 200_000 * USDC))
    d.send(comet_usdc.functions.approve(world.comet, 200_000 * USDC))
    d.send(comet.functions.supplyTo(safe, world.comet_base, 200_000 * USDC))
    d.send(comet_usdc.functions.mint(safe, 100_000 * USDC))
    loan = w3.eth.contract(address=world.morpho_loan, abi=built("TestToken")["abi"])
    morpho = w3.eth.contract(address=world.morpho, abi=built("Morpho")["abi"])
    params = morpho.functions.idToMarketParams(bytes.fromhex(world.morpho_market_id[2:])).call()
    d.send(loan.functions.mint(admin, 400_000 * WAD))
    d.send(loan.functions.approve(world.morpho, 300_000 * WAD))
    d.send(morpho.functions.supply(tuple(params), 300_000 * WAD, 0, safe, b""))
    mm = w3.eth.contract(address=world.metamorpho, abi=built("MetaMorphoVault")["abi"])
    d.send(mm.functions.setCap(bytes.fromhex(world.morpho_market_id2[2:]), 2_000_000 * WAD))
    d.send(loan.functions.approve(world.metamorpho, 100_000 * WAD))
    d.send(mm.functions.deposit(100_000 * WAD, safe))
    dai = aave.tokens["DAI"]
    vault = w3.eth.contract(address=world.vault, abi=built("TestVault")["abi"])
    d.send(dai.functions.mint(admin, 200_000 * WAD))
    d.send(dai.functions.approve(world.vault, 200_000 * WAD))
    d.send(vault.functions.deposit(200_000 * WAD, safe))
