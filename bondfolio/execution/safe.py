"""Safe batches: the Transaction Builder batch file (with its checksum) and the MultiSendCallOnly call.

Read-only: nothing here signs or sends. Owners load the batch file into the Safe{Wallet} Transaction
Builder (or submit the single MultiSendCallOnly call themselves), review and sign.

- :func:`batch_file`: the Transaction Builder JSON (``version`` "1.0", ``chainId`` a decimal string,
  ``createdAt`` integer milliseconds from the snapshot time, so the file is reproducible, ``meta``
  and ``transactions`` with string values).
- :func:`tx_builder_checksum`: Keccak-256 (not NIST SHA3) of the Transaction Builder's own
  serialization of the file with ``meta.name`` null and ``meta.checksum`` absent: an array is ``[a,b]``,
  an object is ``{`` + the JSON array of its sorted keys + each value serialized and followed by
  ``,`` + ``}``, a scalar its JSON.
- :func:`multisend`: ``multiSend(bytes)`` (selector ``0x8d80ff0a``) of MultiSendCallOnly: packed
  entries of 1-byte operation (0, call), 20-byte ``to``, 32-byte value, 32-byte data length, data; the
  Safe calls it with DELEGATECALL (operation 1).
- :func:`multisend_call_only_address`: MultiSendCallOnly's address for a Safe version and chain, from
  the table :data:`MULTISEND_CALL_ONLY` generated from npm ``@safe-global/safe-deployments``
  (``scripts/safe-deployments.py``; the tests compare it with the package's files).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from bondfolio.errors import InputError

__all__ = ["MULTISEND_SELECTOR", "TX_BUILDER_VERSION", "batch_file", "multisend", "multisend_call_only_address",
           "serialize", "tx_builder_checksum"]

MULTISEND_SELECTOR = bytes.fromhex("8d80ff0a")
#: The Transaction Builder version whose file format and checksum the batch follows.
TX_BUILDER_VERSION = "1.18.0"


def _table() -> dict[str, dict[str, str]]:
    text = resources.files("bondfolio.execution").joinpath("multisend_call_only.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)["versions"]
    return data


#: Safe version -> chain id (decimal string) -> MultiSendCallOnly address.
MULTISEND_CALL_ONLY: dict[str, dict[str, str]] = _table()


def multisend_call_only_address(chain_id: int, version: str = "1.4.1") -> str | None:
    """MultiSendCallOnly's address for ``version`` on ``chain_id``; ``None`` where safe-deployments lists
    none (a local node: give ``--multisend``)."""
    if version not in MULTISEND_CALL_ONLY:
        raise InputError(f"Safe version {version!r} is not in the MultiSendCallOnly table (known: "
                         f"{sorted(MULTISEND_CALL_ONLY)})")
    return MULTISEND_CALL_ONLY[version].get(str(chain_id))


def multisend(transactions: Sequence[tuple[str, int, bytes]]) -> bytes:
    """Calldata of ``multiSend(bytes)`` for ``(to, value, data)`` calls (each operation 0)."""
    packed = b"".join(bytes([0]) + bytes.fromhex(to_checksum_address(to)[2:]) + value.to_bytes(32, "big")
                      + len(data).to_bytes(32, "big") + data for to, value, data in transactions)
    return MULTISEND_SELECTOR + encode(["bytes"], [packed])


def serialize(value: Any) -> str:
    """The Transaction Builder's serialization of JSON data (see the module docstring)."""
    if isinstance(value, list):
        return "[" + ",".join(serialize(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value)
        return "{" + json.dumps(keys, separators=(",", ":"), ensure_ascii=False) + "".join(
            serialize(value[k]) + "," for k in keys) + "}"
    if isinstance(value, float):
        raise ValueError("batch files carry no floats (numbers are strings or integers)")
    return json.dumps(value, ensure_ascii=False)


def tx_builder_checksum(batch: dict[str, Any]) -> str:
    """``meta.checksum`` of a batch file: 0x + Keccak-256 hex of :func:`serialize` of the file with
    ``meta.name`` null and no ``meta.checksum``."""
    meta = {k: v for k, v in batch.get("meta", {}).items() if k != "checksum"}
    meta["name"] = None
    return "0x" + keccak(text=serialize({**batch, "meta": meta})).hex()


def batch_file(chain_id: int, created_ms: int, name: str, description: str, safe: str,
               transactions: Sequence[tuple[str, int, bytes]]) -> dict[str, Any]:
    """A Transaction Builder batch file, checksum included (numbers as strings, as the format requires)."""
    batch: dict[str, Any] = {
        "version": "1.0",
        "chainId": str(chain_id),
        "createdAt": int(created_ms),
        "meta": {"name": name, "description": description, "txBuilderVersion": TX_BUILDER_VERSION,
                 "createdFromSafeAddress": to_checksum_address(safe), "createdFromOwnerAddress": ""},
        "transactions": [{"to": to_checksum_address(to), "value": str(value), "data": "0x" + data.hex(),
                          "contractMethod": None, "contractInputsValues": None} for to, value, data in transactions],
    }
    batch["meta"]["checksum"] = tx_builder_checksum(batch)
    return batch
