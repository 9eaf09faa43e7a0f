"""Protocol actions as calldata: what each leg of a plan calls, per protocol.

Every amount is an integer in token base units. A full exit uses the protocol's own idiom so no dust
stays behind: Aave ``withdraw(asset, type(uint256).max, to)``, Comet ``withdraw(asset,
type(uint256).max)``, ERC-4626 / MetaMorpho ``redeem`` of every share, Morpho Blue ``withdraw`` by
shares. Deposits are preceded by an exact-amount ERC-20 ``approve`` of the contract that pulls the
funds.

Pendle PTs trade through the market's router: a buy is ``swapExactTokenForPt`` (the exact model's PT out
as the router's starting guess, the policy's slippage limit as the minimum), a sale
``swapExactPtForToken``, and a PT past its expiry is redeemed with ``redeemPyToToken``; each after an
exact ``approve`` of the router.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from bondfolio.inputs.execution import Execution

__all__ = ["UINT_MAX", "Call", "deposit_calls", "exit_call", "pendle_buy_calls", "pendle_sell_calls", "supports",
           "withdraw_call"]

UINT_MAX = 2**256 - 1
MARKET_PARAMS = "(address,address,address,address,uint256)"

#: Protocols whose legs this version encodes (Pendle PTs when the snapshot knows the market's router).
SUPPORTED = ("aave-v3", "compound-v3", "morpho-blue", "metamorpho", "erc4626", "pendle-pt")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
#: Pendle's structs: ApproxParams, TokenInput, TokenOutput (each with SwapData), LimitOrderData (empty).
APPROX = "(uint256,uint256,uint256,uint256,uint256)"
SWAP_DATA = "(uint8,address,bytes,bool)"
TOKEN_INPUT = f"(address,uint256,address,address,{SWAP_DATA})"
TOKEN_OUTPUT = f"(address,uint256,address,address,{SWAP_DATA})"
FILL = "((uint256,uint256,uint256,uint8,address,address,address,address,uint256,uint256,uint256,bytes),bytes,uint256)"
LIMIT = f"(address,uint256,{FILL}[],{FILL}[],bytes)"
NO_SWAP = (0, ZERO_ADDRESS, b"", False)
NO_LIMIT: tuple[str, int, list[object], list[object], bytes] = (ZERO_ADDRESS, 0, [], [], b"")
#: The router's search for the PT out: at most this many steps, to within this share of the exact amount.
APPROX_ITERATIONS = 64
APPROX_EPS = 10**12  # 1e-6, 1e18 scale


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
    if ex.protocol == "pendle-pt":
        return ex.pendle is not None and ex.pendle.router is not None
    return ex.protocol in SUPPORTED


def _router(ex: Execution) -> str:
    assert ex.pendle is not None and ex.pendle.router is not None, "a Pendle leg needs the market's router"
    return ex.pendle.router


def pendle_buy_calls(ex: Execution, amount: int, pt_out: int, min_pt_out: int, safe: str) -> list[Call]:
    """Approve exactly ``amount`` of the asset to the router, then ``swapExactTokenForPt``: at least
    ``min_pt_out`` PT, the router's search started at the model's ``pt_out`` and kept within
    ``[min_pt_out, pt_out + (pt_out - min_pt_out)]``."""
    router = _router(ex)
    assert ex.pendle is not None
    approve = Call(ex.asset, _fn("approve(address,uint256)", ["address", "uint256"], [router, amount]),
                   f"approve {amount} {ex.asset_symbol} base units to the Pendle router {router}")
    approx = (min_pt_out, pt_out + (pt_out - min_pt_out), pt_out, APPROX_ITERATIONS, APPROX_EPS)
    token_in = (ex.asset, amount, ex.asset, ZERO_ADDRESS, NO_SWAP)
    data = _fn(f"swapExactTokenForPt(address,address,uint256,{APPROX},{TOKEN_INPUT},{LIMIT})",
               ["address", "address", "uint256", APPROX, TOKEN_INPUT, LIMIT],
               [safe, ex.pendle.market, min_pt_out, approx, token_in, NO_LIMIT])
    return [approve, Call(router, data, f"buy at least {min_pt_out} PT base units for {amount} {ex.asset_symbol} "
                                        f"base units on Pendle market {ex.pendle.market}")]


def pendle_sell_calls(ex: Execution, pt_in: int, min_out: int, safe: str, expired: bool) -> list[Call]:
    """Approve exactly ``pt_in`` PT to the router, then ``swapExactPtForToken`` (before expiry) or
    ``redeemPyToToken`` (after: PTs redeem 1:1 for the asset's SY, no YT needed), at least ``min_out``."""
    router = _router(ex)
    assert ex.pendle is not None
    approve = Call(ex.receipt, _fn("approve(address,uint256)", ["address", "uint256"], [router, pt_in]),
                   f"approve {pt_in} PT base units to the Pendle router {router}")
    token_out = (ex.asset, min_out, ex.asset, ZERO_ADDRESS, NO_SWAP)
    if expired:
        data = _fn(f"redeemPyToToken(address,address,uint256,{TOKEN_OUTPUT})",
                   ["address", "address", "uint256", TOKEN_OUTPUT], [safe, ex.pendle.yt, pt_in, token_out])
        what = f"redeem {pt_in} matured PT base units for at least {min_out} {ex.asset_symbol} base units"
    else:
        data = _fn(f"swapExactPtForToken(address,address,uint256,{TOKEN_OUTPUT},{LIMIT})",
                   ["address", "address", "uint256", TOKEN_OUTPUT, LIMIT],
                   [safe, ex.pendle.market, pt_in, token_out, NO_LIMIT])
        what = f"sell {pt_in} PT base units for at least {min_out} {ex.asset_symbol} base units on Pendle"
    return [approve, Call(router, data, what)]


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
