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

from devnet.deploy import NODE, Deployer, artifact

ZERO = "0x0000000000000000000000000000000000000000"
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
