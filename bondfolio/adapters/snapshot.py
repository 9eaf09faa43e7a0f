"""``bondfolio snapshot``: read every market of MARKETS.toml at one pinned block per chain.

MARKETS.toml::

    [chains.ethereum]          # optional: a node on another chain id is an error
    chain_id = 1

    [[markets]]
    protocol = "aave-v3"       # aave-v3 | compound-v3 | morpho-blue | metamorpho | erc4626 | pendle-pt
    chain = "ethereum"
    pool = "0x..."
    asset = "0x..."
    risk_score = 0.08          # optional overrides: id, name, risk_score, tier, tags, symbol

RPC URLs: ``--rpc URL`` (every chain) or ``--rpc CHAIN=URL`` (repeatable), else the environment:
``BONDFOLIO_RPC_URL_<CHAIN>`` (upper case, ``-`` as ``_``) then ``BONDFOLIO_RPC_URL``. URLs are never
printed, logged or written (messages show the host only).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from bondfolio.adapters.base import MarketSpec, ReadContext, market_kinds, run_lockstep
from bondfolio.adapters.chain import ChainClient
from bondfolio.adapters.risk import RiskPrior, factor_prior
from bondfolio.errors import InputError, MarketError
from bondfolio.inputs.base import StrictModel, parse_tagged, read_document, validate_document
from bondfolio.inputs.snapshot import Snapshot, load_snapshot

__all__ = ["ChainRead", "ChainSettings", "MarketsRead", "ReadReport", "load_markets", "read_chains", "read_snapshot",
           "resolve_rpc"]


class ChainSettings(StrictModel):
    chain_id: int | None = Field(default=None, ge=1)
    """Expected chain id: reading from a node on another chain is an error."""
    native_price: float | None = Field(default=None, gt=0.0)
    """Base currency per native token (ETH), recorded with the block for gas costs."""


class _MarketsHead(StrictModel):
    chains: dict[str, ChainSettings] = Field(default_factory=dict)
    markets: list[dict[str, Any]] = Field(min_length=1)


def load_markets(path: str | Path) -> tuple[dict[str, ChainSettings], list[MarketSpec]]:
    """Parse MARKETS.toml: every problem reported at once, each naming the market by its position."""
    raw = read_document(path)
    label = f"markets file '{path}'"
    head = validate_document(_MarketsHead, raw, label)
    specs, problems = parse_tagged(head.markets, market_kinds(), "protocol", "market", "id", "")
    InputError.collect(problems, label)
    return head.chains, specs


def resolve_rpc(chains: list[str], flags: list[str], env: Mapping[str, str]) -> dict[str, str]:
    """The RPC URL of each chain from ``--rpc`` flags, then the environment."""
    general: str | None = None
    per_chain: dict[str, str] = {}
    for flag in flags:
        name, sep, value = flag.partition("=")
        if sep and "://" not in name:
            per_chain[name] = value
        else:
            general = flag
    urls = {}
    for chain in chains:
        key = "BONDFOLIO_RPC_URL_" + chain.upper().replace("-", "_")
        found = per_chain.get(chain) or general or env.get(key) or env.get("BONDFOLIO_RPC_URL")
        if not found:
            raise InputError(f"no RPC URL for chain '{chain}': pass --rpc URL (or --rpc {chain}=URL), or set "
                             f"{key} or BONDFOLIO_RPC_URL")
        if found.split("://", 1)[0].lower() not in ("http", "https") or "://" not in found:
            raise InputError(f"the RPC URL for chain '{chain}' does not start with http:// or https:// (it is "
                             f"{len(found)} characters, not shown: it may hold a key): give the scheme")
        urls[chain] = found
    return urls


class ReadReport(dict[str, Any]):
    """Per chain: block number, hash, timestamp, rounds, HTTP requests, markets, Multicall3 used."""

    blocks: dict[str, dict[str, Any]]
    """Per chain, the snapshot's ``as_of.chains`` entry."""


def read_snapshot(markets: str | Path, rpc: Mapping[str, str], block: int | None = None,
                  risk: RiskPrior | None = None, progress: Callable[[str], None] | None = None,
                  retries: int = 4, backoff: float = 0.25, timeout: float = 20.0) -> tuple[Snapshot, ReadReport]:
    """Read every market and build a validated :class:`Snapshot` (nothing is written here).

    ``block`` pins every chain to that number (for one-chain files); by default each chain's latest.
    """
    read = read_chains(markets, rpc, block, progress, retries, backoff, timeout=timeout)
    return read.snapshot(risk), read.report


@dataclass
class ChainRead:
    """One chain read at its pinned block: the client (still pinned, for further reads at the same
    block), the markets and their fields."""

    chain: str
    client: ChainClient
    specs: list[MarketSpec]
    opportunities: list[dict[str, Any]]


@dataclass
class MarketsRead:
    """Every chain of a MARKETS.toml read at one pinned block each (see :func:`read_chains`)."""

    chains: list[ChainRead]
    report: ReadReport

    @property
    def opportunities(self) -> list[dict[str, Any]]:
        return [o for c in self.chains for o in c.opportunities]

    def snapshot(self, risk: RiskPrior | None = None) -> Snapshot:
        """The validated snapshot of what was read."""
        opportunities = self.opportunities
        ids = [o["id"] for o in opportunities]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise MarketError(f"markets give the same opportunity ids {dupes}: set a distinct 'id' for each")
        blocks = {c.chain: c.client.block for c in self.chains}
        snapshot = {
            "schema": "bondfolio.snapshot/1",
            "description": f"read from the chain by bondfolio snapshot ({len(opportunities)} markets)",
            "as_of": {"timestamp": datetime.fromtimestamp(max(b.timestamp for b in blocks.values() if b), UTC
                                                          ).isoformat(),
                      "chains": {c.chain: self.report.blocks[c.chain] for c in self.chains}},
            "base_currency": "USD",
            "opportunities": opportunities,
            "risk": {"factors": factor_prior(opportunities, risk or RiskPrior())},
        }
        return load_snapshot(snapshot)


def read_chains(markets: str | Path, rpc: Mapping[str, str], block: int | None = None,
                progress: Callable[[str], None] | None = None, retries: int = 4, backoff: float = 0.25,
                verify: bool = True, timeout: float = 20.0) -> MarketsRead:
    """Read every market of ``markets`` at one pinned block per chain, batched (see the module
    docstring). With ``verify`` (the default) each chain's pinned block is re-checked by hash at the
    end; pass ``False`` to read more at the same blocks first, then call ``client.verify()``."""
    settings, specs = load_markets(markets)
    chains = sorted({s.chain for s in specs})
    if block is not None and len(chains) > 1:
        raise InputError(f"--block pins one chain, but the markets span {chains}: read each chain separately")
    if block is not None and block < 0:
        raise InputError(f"--block is {block}: a block number is 0 or more")
    report = ReadReport()
    report.blocks = {}
    out: list[ChainRead] = []
    for chain in chains:
        chain_settings = settings.get(chain, ChainSettings())
        client = ChainClient(rpc[chain], chain, chain_settings.chain_id, retries=retries, backoff=backoff,
                             timeout=timeout)
        pinned = client.pin(block)
        ctx = ReadContext(pinned.number, pinned.timestamp, chain, chain_id=client.chain_id or 1)
        chain_specs = [s for s in specs if s.chain == chain]
        readers = [(s, s.reader(ctx)) for s in chain_specs]
        say = progress or _quiet
        say(f"chain '{chain}': {len(readers)} markets at block {pinned.number}")

        counted = [0]

        def execute(calls: list[Any], _client: ChainClient = client, _chain: str = chain,
                    _say: Callable[[str], None] = say, _counted: list[int] = counted) -> list[Any]:
            _say(f"chain '{_chain}': {len(calls)} calls")
            _counted[0] += len(calls)
            return _client.execute(calls)

        fields, rounds = run_lockstep(readers, execute)
        if verify:
            client.verify()
        opportunities = []
        for spec, fields_ in zip(chain_specs, fields, strict=True):
            details = fields_.pop("_details", {})
            fields_["risk_score"] = spec.risk_score if spec.risk_score is not None else spec.default_risk_score
            fields_["tier"] = (spec.tier.value if spec.tier else "core" if fields_["risk_score"] <= 0.1 else "yield")
            fields_["tags"] = list(spec.tags)
            if spec.name:
                fields_["name"] = spec.name
            if spec.id:
                fields_["id"] = spec.id
            report.setdefault("details", {})[fields_["id"]] = details
            opportunities.append(fields_)
        report.blocks[chain] = {"chain_id": client.chain_id, "block_number": pinned.number, "block_hash": pinned.hash,
                                "block_timestamp": pinned.timestamp, "base_fee_wei": pinned.base_fee,
                                "native_price": chain_settings.native_price}
        report[chain] = {"block": pinned.number, "hash": pinned.hash, "timestamp": pinned.timestamp,
                         "rounds": rounds, "requests": client.requests, "calls": counted[0],
                         "markets": len(chain_specs), "multicall3": client.multicall}
        out.append(ChainRead(chain, client, chain_specs, opportunities))
    return MarketsRead(out, report)


def _quiet(message: str) -> None:
    del message


def stderr_progress(message: str) -> None:
    """Progress on standard error, only when it is a terminal."""
    if sys.stderr.isatty():
        print(f"\r\x1b[K{message}", end="", file=sys.stderr, flush=True)


def environment() -> Mapping[str, str]:
    return os.environ
