"""ERC-20 metadata calls shared by readers."""

from bondfolio.adapters.base import Fn

__all__ = ["BALANCE_OF", "DECIMALS", "SYMBOL", "TOTAL_SUPPLY"]

SYMBOL = Fn("symbol()", "string")
DECIMALS = Fn("decimals()", "uint8")
TOTAL_SUPPLY = Fn("totalSupply()", "uint256")
BALANCE_OF = Fn("balanceOf(address)", "uint256")
