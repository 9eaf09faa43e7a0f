"""Deploy helpers: artifacts, library linking, transactions from anvil's unlocked accounts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "node_modules"
BUILD = Path(__file__).resolve().parent / "build"


def artifact(path: str | Path) -> dict[str, Any]:
    """A compiled artifact (``abi``, ``bytecode``, ``linkReferences``) from a JSON file."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def aave_artifact(name: str) -> dict[str, Any]:
    """An artifact shipped by npm ``@aave/core-v3``, found by contract name."""
    base = NODE / "@aave" / "core-v3" / "artifacts" / "contracts"
    matches = [p for p in base.rglob(f"{name}.json") if not p.name.endswith(".dbg.json")]
    if len(matches) != 1:
        raise FileNotFoundError(f"artifact {name}: {len(matches)} matches under {base} (run 'npm ci')")
    return artifact(matches[0])


def built(name: str) -> dict[str, Any]:
    """An artifact of the project's own compiled contracts (``devnet/build``)."""
    return artifact(BUILD / f"{name}.json")


def link(data: dict[str, Any], libraries: dict[str, str]) -> str:
    """Bytecode with each linked library's address written at its ``linkReferences`` offsets."""
    code = data["bytecode"].removeprefix("0x")
    for _file, names in data.get("linkReferences", {}).items():
        for name, places in names.items():
            address = libraries[name].removeprefix("0x").lower()
            for place in places:
                start = 2 * place["start"]
                code = code[:start] + address + code[start + 2 * place["length"]:]
    if re.search(r"__\$[0-9a-f]{34}\$__", code):
        raise ValueError("bytecode still has unlinked library placeholders")
    return "0x" + code


class Deployer:
    """Sends deployments and calls from one unlocked anvil account, waiting for each receipt."""

    def __init__(self, w3: Web3, account: str | None = None) -> None:
        self.w3 = w3
        self.account = account or w3.eth.accounts[0]

    def deploy(self, data: dict[str, Any], *args: Any, libraries: dict[str, str] | None = None) -> Contract:
        code = link(data, libraries or {})
        factory = self.w3.eth.contract(abi=data["abi"], bytecode=code)
        tx = factory.constructor(*args).transact({"from": self.account})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt["status"] != 1:
            raise RuntimeError(f"deployment of {data.get('contractName', '?')} reverted")
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=data["abi"])

    def send(self, call: Any, sender: str | None = None) -> Any:
        tx = call.transact({"from": sender or self.account})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {call.fn_name} reverted")
        return receipt

    def at(self, address: str, data: dict[str, Any]) -> Contract:
        return self.w3.eth.contract(address=address, abi=data["abi"])
