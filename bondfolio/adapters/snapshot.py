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

__all__ = ["ChainSettings", "ReadReport", "load_markets", "read_snapshot", "resolve_rpc"]


class ChainSettings(StrictModel):
    chain_id: int | None = Field(default=None, ge=1)
    """Expected chain id: reading from a node on another chain is an error."""


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
        urls[chain] = found
    return urls


class ReadReport(dict[str, Any]):
    """Per chain: block number, hash, timestamp, rounds, HTTP requests, markets, Multicall3 used."""


def read_snapshot(markets: str | Path, rpc: Mapping[str, str], block: int | None = None,
                  risk: RiskPrior | None = None, progress: Callable[[str], None] | None = None,
                  retries: int = 4, backoff: float = 0.25) -> tuple[Snapshot, ReadReport]:
    """Read every market and build a validated :class:`Snapshot` (nothing is written here).

    ``block`` pins every chain to that number (for one-chain files); by default each chain's latest.
    """
    settings, specs = load_markets(markets)
    chains = sorted({s.chain for s in specs})
    if block is not None and len(chains) > 1:
        raise InputError(f"--block pins one chain, but the markets span {chains}: read each chain separately")
    prior = risk or RiskPrior()
    report = ReadReport()
    opportunities: list[dict[str, Any]] = []
    chain_blocks: dict[str, Any] = {}
    timestamps = []
    for chain in chains:
        expected = settings.get(chain, ChainSettings()).chain_id
        client = ChainClient(rpc[chain], chain, expected, retries=retries, backoff=backoff)
        pinned = client.pin(block)
        ctx = ReadContext(pinned.number, pinned.timestamp, chain)
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
        client.verify()
        for spec, out in zip(chain_specs, fields, strict=True):
            details = out.pop("_details", {})
            out["risk_score"] = spec.risk_score if spec.risk_score is not None else spec.default_risk_score
            out["tier"] = (spec.tier.value if spec.tier else "core" if out["risk_score"] <= 0.1 else "yield")
            out["tags"] = list(spec.tags)
            if spec.name:
                out["name"] = spec.name
            if spec.id:
                out["id"] = spec.id
            report.setdefault("details", {})[out["id"]] = details
            opportunities.append(out)
        chain_blocks[chain] = {"chain_id": client.chain_id, "block_number": pinned.number, "block_hash": pinned.hash}
        timestamps.append(pinned.timestamp)
        report[chain] = {"block": pinned.number, "hash": pinned.hash, "timestamp": pinned.timestamp,
                         "rounds": rounds, "requests": client.requests, "calls": counted[0],
                         "markets": len(chain_specs),
                         "multicall3": client.multicall}
    ids = [o["id"] for o in opportunities]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise MarketError(f"markets give the same opportunity ids {dupes}: set a distinct 'id' for each")
    snapshot = {
        "schema": "bondfolio.snapshot/1",
        "description": f"read from the chain by bondfolio snapshot ({len(opportunities)} markets)",
        "as_of": {"timestamp": datetime.fromtimestamp(max(timestamps), UTC).isoformat(), "chains": chain_blocks},
        "base_currency": "USD",
        "opportunities": opportunities,
        "risk": {"factors": factor_prior(opportunities, prior)},
    }
    return load_snapshot(snapshot), report


def _quiet(message: str) -> None:
    del message


def stderr_progress(message: str) -> None:
    """Progress on standard error, only when it is a terminal."""
    if sys.stderr.isatty():
        print(f"\r\x1b[K{message}", end="", file=sys.stderr, flush=True)


def environment() -> Mapping[str, str]:
    return os.environ
