"""Protocol actions as calldata: what each leg of a plan calls, per protocol.

Every amount is an integer in token base units. A full exit uses the protocol's own idiom so no dust
stays behind: Aave ``withdraw(asset, type(uint256).max, to)``, Comet ``withdraw(asset,
type(uint256).max)``, ERC-4626 / MetaMorpho ``redeem`` of every share, Morpho Blue ``withdraw`` by
shares. Deposits are preceded by an exact-amount ERC-20 ``approve`` of the contract that pulls the
funds.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from bondfolio.inputs.execution import Execution

__all__ = ["UINT_MAX", "Call", "deposit_calls", "exit_call", "supports", "withdraw_call"]

UINT_MAX = 2**256 - 1
MARKET_PARAMS = "(address,address,address,address,uint256)"

#: Protocols whose legs this version encodes (Pendle PT trades go through Pendle's router: not yet).
SUPPORTED = ("aave-v3", "compound-v3", "morpho-blue", "metamorpho", "erc4626")


@dataclass(frozen=True)
class Call:
    """One transaction of a leg: target, calldata and what it does, in words."""

    to: str
    data: bytes
    description: str
    value: int = 0


def _fn(signature: str, types: list[str], args: list[object]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, args)


def _params(ex: Execution) -> tuple[str, str, str, str, int]:
    assert ex.morpho is not None
    m = ex.morpho
    return (m.loan_token, m.collateral_token, m.oracle, m.irm, m.lltv)


def supports(ex: Execution) -> bool:
    return ex.protocol in SUPPORTED


def deposit_calls(ex: Execution, amount: int, safe: str) -> list[Call]:
    """Approve exactly ``amount`` of the asset, then supply or deposit it for ``safe``."""
    approve = Call(ex.asset, _fn("approve(address,uint256)", ["address", "uint256"], [ex.target, amount]),
                   f"approve {amount} {ex.asset_symbol} base units to {ex.target}")
    if ex.protocol == "aave-v3":
        data = _fn("supply(address,uint256,address,uint16)", ["address", "uint256", "address", "uint16"],
                   [ex.asset, amount, safe, 0])
    elif ex.protocol == "compound-v3":
        data = _fn("supply(address,uint256)", ["address", "uint256"], [ex.asset, amount])
    elif ex.protocol in ("erc4626", "metamorpho"):
        data = _fn("deposit(uint256,address)", ["uint256", "address"], [amount, safe])
    elif ex.protocol == "morpho-blue":
        data = _fn(f"supply({MARKET_PARAMS},uint256,uint256,address,bytes)",
                   [MARKET_PARAMS, "uint256", "uint256", "address", "bytes"], [_params(ex), amount, 0, safe, b""])
    else:
        raise ValueError(f"no deposit action for {ex.protocol}")
    return [approve, Call(ex.target, data, f"deposit {amount} {ex.asset_symbol} base units into {ex.protocol}")]


def withdraw_call(ex: Execution, amount: int, safe: str) -> Call:
    """Withdraw ``amount`` asset base units to ``safe``."""
    if ex.protocol == "aave-v3":
        data = _fn("withdraw(address,uint256,address)", ["address", "uint256", "address"], [ex.asset, amount, safe])
    elif ex.protocol == "compound-v3":
        data = _fn("withdraw(address,uint256)", ["address", "uint256"], [ex.asset, amount])
    elif ex.protocol in ("erc4626", "metamorpho"):
        data = _fn("withdraw(uint256,address,address)", ["uint256", "address", "address"], [amount, safe, safe])
    elif ex.protocol == "morpho-blue":
        data = _fn(f"withdraw({MARKET_PARAMS},uint256,uint256,address,address)",
                   [MARKET_PARAMS, "uint256", "uint256", "address", "address"], [_params(ex), amount, 0, safe, safe])
    else:
        raise ValueError(f"no withdraw action for {ex.protocol}")
    return Call(ex.target, data, f"withdraw {amount} {ex.asset_symbol} base units from {ex.protocol}")


def exit_call(ex: Execution, units: int, safe: str) -> Call:
    """Leave the position entirely (``units`` in its measure: shares where it counts shares)."""
    if ex.protocol == "aave-v3":
        data = _fn("withdraw(address,uint256,address)", ["address", "uint256", "address"], [ex.asset, UINT_MAX, safe])
    elif ex.protocol == "compound-v3":
        data = _fn("withdraw(address,uint256)", ["address", "uint256"], [ex.asset, UINT_MAX])
    elif ex.protocol in ("erc4626", "metamorpho"):
        data = _fn("redeem(uint256,address,address)", ["uint256", "address", "address"], [units, safe, safe])
    elif ex.protocol == "morpho-blue":
        data = _fn(f"withdraw({MARKET_PARAMS},uint256,uint256,address,address)",
                   [MARKET_PARAMS, "uint256", "uint256", "address", "address"], [_params(ex), 0, units, safe, safe])
    else:
        raise ValueError(f"no exit action for {ex.protocol}")
    return Call(ex.target, data, f"exit {ex.protocol} entirely ({units} units)")
