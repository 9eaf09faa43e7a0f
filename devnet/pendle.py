"""The real Pendle V7 on the devnet, from the compiled artifacts of npm ``@pendle/core-v2`` (test tooling).

``deploy_pendle(w3)`` deploys what Pendle's own deploy scripts deploy, from the package's build artifacts:

- ``PendleProxyAdmin`` and, behind OpenZeppelin 4.9.3 ``TransparentUpgradeableProxy`` (npm
  ``@openzeppelin/contracts`` 4.9.3, the version Pendle pins), ``PendleYieldContractFactoryUpg`` (expiry
  divisor one day, 3 % interest and reward fees) and ``PendleMarketFactoryV7Upg`` (80 % of swap fees to
  the treasury), each initialised through its proxy as the protocol does (the implementations disable
  their initialisers);
- the split creation code those factories take (``BaseSplitCodeFactory``): PendleYieldToken's, and
  PendleMarketV7's with its external ``OracleLib`` linked;
- the router: ``PendleRouterV4`` over ``ActionStorageV4`` with the facets ActionSwapPTV3, ActionSwapYTV3,
  ActionAddRemoveLiqV3, ActionMiscV3, ActionSimple and ActionCallbackV3 registered by selector;
- ``PendlePYLpOracle`` behind a proxy, the protocol's own PT price view.

The package ships no SY and no gauge controller that runs without vePendle, so two contracts are the
project's own (``devnet/contracts``): ``PendleERC4626SY`` (Pendle's SY interface over an ERC-4626 vault)
and ``PendleGaugeStub``. ``create_market`` then makes a PT/YT pair and a market over an SY, sizes its
curve the way Pendle's parameter helper does (``scalarRoot`` from a rate range, the anchor at the wanted
implied rate), raises its oracle's cardinality, and seeds liquidity through the real router
(``mintPyFromSy``, ``addLiquidityDualSyAndPt``). The node must allow contracts over 24,576 bytes
(ActionAddRemoveLiqV3 is 24,745): :class:`devnet.anvil.Anvil` starts anvil with a larger limit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from devnet.deploy import NODE, Deployer, artifact, built, link

__all__ = ["PendleCore", "PendleMarket", "buy_pt", "create_market", "deploy_pendle", "pendle_artifact", "seed_market"]

DAY = 86400
YEAR = 365 * DAY
WAD = 10**18
PENDLE = NODE / "@pendle" / "core-v2" / "build" / "artifacts" / "contracts"
OZ4 = NODE / "@openzeppelin" / "contracts-v4" / "build" / "contracts"
#: 32-byte init code that returns everything after it as runtime code (Pendle's CodeDeployer idiom).
CODE_DEPLOYER = bytes.fromhex("602038038060206000396000f3").ljust(32, b"\xfe")
FACETS = ("ActionSwapPTV3", "ActionSwapYTV3", "ActionAddRemoveLiqV3", "ActionMiscV3", "ActionSimple",
          "ActionCallbackV3")


def pendle_artifact(path: str) -> dict[str, Any]:
    """An artifact of npm ``@pendle/core-v2`` by its path under ``contracts/`` without ``.sol``
    (``core/Market/PendleMarketV7``)."""
    name = path.rsplit("/", 1)[-1]
    return artifact(PENDLE / f"{path}.sol" / f"{name}.json")


@dataclass
class PendleMarket:
    """One market and the tokens around it."""

    market: Contract
    sy: Contract
    pt: Contract
    yt: Contract
    expiry: int
    scalar_root: int
    initial_anchor: int
    ln_fee_rate_root: int


@dataclass
class PendleCore:
    """The protocol's shared contracts."""

    router: Contract
    """The router diamond, with the ABI of every facet."""
    yield_factory: Contract
    market_factory: Contract
    oracle: Contract
    """``PendlePYLpOracle``: ``getPtToAssetRate(market, duration)``."""
    treasury: str
    deployer: Deployer
    reserve_fee_percent: int


def _function_signature(entry: dict[str, Any]) -> str:
    def kind(item: dict[str, Any]) -> str:
        if item["type"].startswith("tuple"):
            return "(" + ",".join(kind(c) for c in item["components"]) + ")" + item["type"][5:]
        return str(item["type"])
    return f"{entry['name']}({','.join(kind(i) for i in entry['inputs'])})"


def selectors(abi: list[dict[str, Any]]) -> list[bytes]:
    return [bytes(Web3.keccak(text=_function_signature(e))[:4]) for e in abi if e["type"] == "function"]


def merged_abi(abis: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The router's ABI: every facet's entries once (events and errors repeat across facets)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for abi in abis:
        for entry in abi:
            if entry["type"] in ("constructor", "fallback", "receive"):
                continue
            key = (entry["type"], entry.get("name", ""), json.dumps(entry.get("inputs", []), sort_keys=True))
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


def _store_code(d: Deployer, code: bytes) -> str:
    tx = d.w3.eth.send_transaction({"from": d.account, "data": "0x" + (CODE_DEPLOYER + code).hex()})
    receipt = d.w3.eth.wait_for_transaction_receipt(tx)
    address = str(receipt["contractAddress"])
    if receipt["status"] != 1 or bytes(d.w3.eth.get_code(address)) != code:  # type: ignore[arg-type]
        raise RuntimeError("storing split creation code failed")
    return address


def split_code(d: Deployer, creation_hex: str) -> tuple[str, int, str, int]:
    """Creation code stored as two contracts' runtime code, as Pendle's split-code factories take it:
    ``(A, sizeA, B, sizeB)``. The split point avoids a half starting with 0xEF (EIP-3541)."""
    code = bytes.fromhex(creation_hex.removeprefix("0x"))
    k = len(code) // 2
    while code[k] == 0xEF:
        k += 1
    return _store_code(d, code[:k]), k, _store_code(d, code[k:]), len(code) - k


def deploy_pendle(w3: Web3, treasury: str | None = None, reserve_fee_percent: int = 80) -> PendleCore:
    d = Deployer(w3)
    owner = d.account
    treasury = treasury or w3.eth.accounts[3]
    reward_token = d.deploy(built("TestToken"), "Pendle (devnet)", "PENDLE", 18)
    gauge = d.deploy(built("PendleGaugeStub"), reward_token.address)
    admin = d.deploy(pendle_artifact("offchain-helpers/PendleProxyAdmin"), owner)
    proxy = artifact(OZ4 / "TransparentUpgradeableProxy.json")

    def behind_proxy(impl: Contract, init: bytes | str) -> Contract:
        p = d.deploy(proxy, impl.address, admin.address, init)
        return w3.eth.contract(address=p.address, abi=impl.abi)

    yt = pendle_artifact("core/YieldContracts/PendleYieldToken")
    ycf_impl = d.deploy(pendle_artifact("core/YieldContracts/PendleYieldContractFactoryUpg"),
                        *split_code(d, yt["bytecode"]))
    ycf = behind_proxy(ycf_impl, ycf_impl.encode_abi("initialize", [DAY, 3 * 10**16, 3 * 10**16, treasury, owner]))
    oracle_lib = d.deploy(pendle_artifact("core/Market/OracleLib"))
    market_code = link(pendle_artifact("core/Market/PendleMarketV7"), {"OracleLib": oracle_lib.address})
    mf_impl = d.deploy(pendle_artifact("core/Market/PendleMarketFactoryV7Upg"), ycf.address,
                       *split_code(d, market_code), gauge.address)
    mf = behind_proxy(mf_impl, mf_impl.encode_abi("initialize", [owner, treasury, reserve_fee_percent]))

    storage = d.deploy(pendle_artifact("router/ActionStorageV4"))
    core = d.deploy(pendle_artifact("router/PendleRouterV4"), owner, storage.address)
    facets = [d.deploy(pendle_artifact(f"router/{name}")) for name in FACETS] + [storage]
    router = w3.eth.contract(address=core.address, abi=merged_abi([f.abi for f in facets]))
    d.send(router.functions.setSelectorToFacets([(f.address, selectors(f.abi)) for f in facets]))

    oracle_impl = d.deploy(pendle_artifact("oracles/PtYtLpOracle/PendlePYLpOracle"))
    # blocks per oracle cycle as a fraction of its denominator (1000): one cycle per block
    denominator = oracle_impl.functions.BLOCK_CYCLE_DENOMINATOR().call()
    oracle = behind_proxy(oracle_impl, oracle_impl.encode_abi("initialize", [denominator, owner]))
    return PendleCore(router, ycf, mf, oracle, treasury, d, reserve_fee_percent)


def create_market(core: PendleCore, sy: Contract, expiry: int, implied_apy: float, *,
                  rate_range: tuple[float, float] = (0.03, 0.15), fee_apy: float = 0.003) -> PendleMarket:
    """A PT/YT pair and a market over ``sy`` expiring at ``expiry`` (a whole day, unix seconds).

    The curve is sized as Pendle's parameter helper sizes it: over ``rate_range`` (implied APYs) the
    proportion of PT stays within ln(9) of the anchor (10 % to 90 %); the anchor is set so that a pool
    seeded half PT and half asset value trades at ``implied_apy``; the fee is ``ln(1 + fee_apy)``.
    """
    d, w3 = core.deployer, core.deployer.w3
    d.send(core.yield_factory.functions.createYieldContract(sy.address, expiry, False))
    pt_address = core.yield_factory.functions.getPT(sy.address, expiry).call()
    yt_address = core.yield_factory.functions.getYT(sy.address, expiry).call()
    pt = w3.eth.contract(address=pt_address, abi=pendle_artifact("core/YieldContracts/PendlePrincipalToken")["abi"])
    yt = w3.eth.contract(address=yt_address, abi=pendle_artifact("core/YieldContracts/PendleYieldToken")["abi"])
    now = w3.eth.get_block("latest")["timestamp"]
    years = (expiry - now) / YEAR
    lo, hi = ((1 + r) ** years for r in rate_range)
    mid = (lo + hi) / 2
    scalar_root = int(math.log(9) * years / max(hi - mid, mid - lo) * WAD)
    initial_anchor = int(math.exp(math.log1p(implied_apy) * years) * WAD)
    ln_fee = int(math.log1p(fee_apy) * WAD)
    create = core.market_factory.functions.createNewMarket(pt.address, scalar_root, initial_anchor, ln_fee)
    address = create.call({"from": d.account})
    d.send(create)
    market = w3.eth.contract(address=address, abi=pendle_artifact("core/Market/PendleMarketV7")["abi"])
    # one observation slot by default: observe() of any past time would revert (OracleTargetTooOld)
    d.send(market.functions.increaseObservationsCardinalityNext(64))
    return PendleMarket(market, sy, pt, yt, expiry, scalar_root, initial_anchor, ln_fee)


def seed_market(core: PendleCore, m: PendleMarket, asset: Contract, provider: str, pt_amount: int) -> None:
    """Add ``pt_amount`` PT and the SY worth as much asset to the market through the router, from
    ``provider`` (minted asset deposited into the SY, SY split into PT and YT by ``mintPyFromSy``)."""
    d, router = core.deployer, core.router
    index = m.yt.functions.pyIndexCurrent().call()
    sy_for_pt = -(-pt_amount * WAD // index)                       # SY that mints pt_amount PT (rounded up)
    sy_seed = pt_amount * WAD // index                            # SY worth pt_amount asset
    need = (sy_for_pt + sy_seed) * index // WAD + 2 * 10**asset.functions.decimals().call()
    d.send(asset.functions.mint(provider, need), provider)
    d.send(asset.functions.approve(m.sy.address, need), provider)
    d.send(m.sy.functions.deposit(provider, asset.address, need, 0), provider)
    for token in (m.sy, m.pt, m.yt):
        d.send(token.functions.approve(router.address, 2**256 - 1), provider)
    d.send(router.functions.mintPyFromSy(provider, m.yt.address, sy_for_pt, 0), provider)
    d.send(router.functions.addLiquidityDualSyAndPt(provider, m.market.address, sy_seed, pt_amount, 0), provider)


def buy_pt(w3: Web3, router: str, market: str, asset: Contract, to: str, amount: int, buyer: str) -> None:
    """``to`` gets the PT that ``amount`` of the asset buys through the router (``swapExactTokenForPt`` with
    the router's own search), paid by ``buyer`` with freshly minted asset (test tokens mint freely)."""
    zero = "0x0000000000000000000000000000000000000000"
    swap = w3.eth.contract(address=router, abi=pendle_artifact("router/ActionSwapPTV3")["abi"])
    d = Deployer(w3, buyer)
    d.send(asset.functions.mint(buyer, amount))
    d.send(asset.functions.approve(router, amount))
    approx = (0, 2**255, 0, 256, 10**14)  # no off-chain guess: the router searches to 1e-4
    token_in = (asset.address, amount, asset.address, zero, (0, zero, b"", False))
    d.send(swap.functions.swapExactTokenForPt(to, market, 0, approx, token_in, (zero, 0, [], [], b"")))
