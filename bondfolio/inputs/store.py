"""The history store: daily observations of market series, in one local DuckDB file, read with pandas.

DuckDB is embedded (no server): the store is one file a backtest opens read-only. Schema::

    series(series TEXT PRIMARY KEY, source TEXT, network TEXT, symbol TEXT, meta TEXT)   -- meta: JSON
    observations(series TEXT, date DATE, apy DOUBLE, liquidity_index DOUBLE, tvl DOUBLE,
                 available_liquidity DOUBLE, price DOUBLE, frozen BOOLEAN, paused BOOLEAN,
                 PRIMARY KEY (series, date))

- ``series`` names are ``source:network:symbol`` (``aave-v3:arbitrum:USDC``), as the importers make them;
- ``apy`` is a decimal APY (converted on import and said so: Aave's APR compounded per second,
  DefiLlama's percent APRs of Aave/Compound pools likewise);
- ``liquidity_index`` (Aave) makes realized returns exact: ``index[t1] / index[t0]``; without it a
  backtest compounds the reported APY daily (an approximation, and it says so);
- ``tvl`` and ``available_liquidity`` are in base currency, ``price`` base currency per token.

Importers (``bondfolio history import ...``): ``aave-v3-daily CSV`` (the shared real Aave v3 data),
``defillama --pools pools.json --charts DIR`` (files saved from the public yields API) and
``snapshots DIR`` (bondfolio snapshot files). Bad data is reported by file, row and field: non-numeric
values, duplicated days, rates that look like percent (units off by 100); gaps are allowed and counted.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bondfolio.errors import InputError

__all__ = ["COLUMNS", "HistoryStore", "ImportReport", "import_aave_daily", "import_defillama", "import_snapshots"]

SECONDS_PER_YEAR = 365 * 24 * 3600
COLUMNS = ("apy", "liquidity_index", "tvl", "available_liquidity", "price", "frozen", "paused")
#: Largest credible decimal APR/APY; above it a value is taken for a percent (units off by 100).
MAX_RATE = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (series TEXT PRIMARY KEY, source TEXT, network TEXT, symbol TEXT, meta TEXT);
CREATE TABLE IF NOT EXISTS observations (series TEXT, date DATE, apy DOUBLE, liquidity_index DOUBLE, tvl DOUBLE,
    available_liquidity DOUBLE, price DOUBLE, frozen BOOLEAN, paused BOOLEAN, PRIMARY KEY (series, date));
"""


def apr_to_apy(apr: float) -> float:
    """Aave's convention: an APR compounded per second."""
    return math.expm1(SECONDS_PER_YEAR * math.log1p(apr / SECONDS_PER_YEAR))


@dataclass
class ImportReport:
    """What an import added: rows and series, and the gaps (missing days) it found per series."""

    rows: int = 0
    series: list[str] = field(default_factory=list)
    gaps: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        gaps = sum(self.gaps.values())
        lines = [f"{self.rows} rows of {len(self.series)} series imported; {gaps} missing days in "
                 f"{sum(1 for g in self.gaps.values() if g)} series (gaps are kept as gaps)"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes]) + "\n"


class HistoryStore:
    """A DuckDB file of daily observations (see the module docstring)."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        import duckdb

        self.path = Path(path)
        if read_only and not self.path.exists():
            raise InputError(f"history store '{self.path}' does not exist: fill it with 'bondfolio history import'")
        try:
            self.db = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise InputError(f"history store '{self.path}' cannot be opened: {exc}") from None
        if not read_only:
            self.db.execute(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, series: list[dict[str, Any]], rows: pd.DataFrame) -> None:
        """Insert (or replace) series metadata and observations in one transaction."""
        self.db.execute("BEGIN")
        try:
            for s in series:
                self.db.execute("INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?)",
                                [s["series"], s["source"], s["network"], s["symbol"], json.dumps(s.get("meta", {}))])
            frame = rows.reindex(columns=["series", "date", *COLUMNS])
            self.db.register("incoming", frame)
            self.db.execute("INSERT OR REPLACE INTO observations SELECT series, CAST(date AS DATE), apy, "
                            "liquidity_index, tvl, available_liquidity, price, frozen, paused FROM incoming")
            self.db.unregister("incoming")
            self.db.execute("COMMIT")
        except Exception:
            self.db.execute("ROLLBACK")
            raise

    def series(self) -> pd.DataFrame:
        return self.db.execute("SELECT * FROM series ORDER BY series").df()

    def frame(self, names: Iterable[str], start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Observations of ``names`` between ``start`` and ``end`` (inclusive), one row per (series, date)."""
        names = list(names)
        known = set(self.series()["series"])
        missing = [n for n in names if n not in known]
        if missing:
            raise InputError(f"history store '{self.path}' has no series {missing[:5]} (it has {len(known)}: e.g. "
                             f"{sorted(known)[:3]}): import them or fix the universe")
        query = "SELECT * FROM observations WHERE series IN (SELECT unnest(?))"
        args: list[Any] = [names]
        if start is not None:
            query += " AND date >= ?"
            args.append(start)
        if end is not None:
            query += " AND date <= ?"
            args.append(end)
        out = self.db.execute(query + " ORDER BY series, date", args).df()
        out["date"] = pd.to_datetime(out["date"]).dt.date
        return out


def _gaps(dates: list[date]) -> int:
    days = sorted(set(dates))
    return sum((b - a).days - 1 for a, b in itertools.pairwise(days))


def _number(value: str, where: str, problems: list[str]) -> float | None:
    try:
        x = float(value)
    except ValueError:
        problems.append(f"{where}: {value!r} is not a number")
        return None
    if not math.isfinite(x):
        problems.append(f"{where}: {value!r} is not finite")
        return None
    return x


def import_aave_daily(csv_path: str | Path, store: HistoryStore) -> ImportReport:
    """The shared Aave v3 daily CSV (see ../shared/data/aave-v3-daily/README.md): series
    ``aave-v3:<network>:<symbol>``, ``apy`` = the supply APR compounded per second, the liquidity index,
    the frozen and paused flags."""
    path = Path(csv_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"history CSV '{path}' cannot be read as UTF-8 text: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    needed = {"date", "network", "symbol", "asset_address", "decimals", "current_liquidity_rate", "liquidity_index",
              "frozen", "paused"}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        raise InputError(f"history CSV '{path}' lacks columns {sorted(needed - set(reader.fieldnames or []))}")
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, date], int] = {}
    meta: dict[str, dict[str, Any]] = {}
    records = list(reader)
    assets: dict[tuple[str, str], set[str]] = {}
    for r in records:
        assets.setdefault((r["network"], r["symbol"]), set()).add(r["asset_address"].lower())
    # a network listing one symbol for several assets (bridged and native USDC): every one is named by
    # its address too, so no series means two assets
    ambiguous = {key for key, found in assets.items() if len(found) > 1}
    for k, r in enumerate(records, start=2):
        where = f"{path.name} row {k}"
        try:
            day = date.fromisoformat(r["date"])
        except ValueError:
            problems.append(f"{where}, field 'date': {r['date']!r} is not a YYYY-MM-DD day")
            continue
        name = f"aave-v3:{r['network']}:{r['symbol']}"
        if (r["network"], r["symbol"]) in ambiguous:
            name += "@" + r["asset_address"].lower()[:10]
        if (name, day) in seen:
            problems.append(f"{where}: {name} on {day} appears twice (first at row {seen[(name, day)]})")
            continue
        seen[(name, day)] = k
        rate = _number(r["current_liquidity_rate"], f"{where}, field 'current_liquidity_rate'", problems)
        index = _number(r["liquidity_index"], f"{where}, field 'liquidity_index'", problems)
        if rate is None or index is None:
            continue
        if not 0 <= rate <= MAX_RATE:
            problems.append(f"{where}, field 'current_liquidity_rate': {rate} is not a decimal APR in [0, {MAX_RATE}] "
                            "(a percent? divide by 100)")
            continue
        if index <= 0:
            problems.append(f"{where}, field 'liquidity_index': {index} is not positive")
            continue
        meta.setdefault(name, {"series": name, "source": "aave-v3", "network": r["network"], "symbol": r["symbol"],
                               "meta": {"asset": r["asset_address"], "decimals": r["decimals"]}})
        rows.append({"series": name, "date": day, "apy": apr_to_apy(rate), "liquidity_index": index,
                     "frozen": r["frozen"] == "True", "paused": r["paused"] == "True"})
    InputError.collect(problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else []),
                       f"history CSV '{path}'")
    if not rows:
        raise InputError(f"history CSV '{path}' has no rows")
    frame = pd.DataFrame(rows)
    store.write(list(meta.values()), frame)
    notes = ["apy is Aave's supply APR compounded per second"]
    notes += [f"{net} lists {sym} for {len(assets[(net, sym)])} assets: their series carry the address "
              f"(aave-v3:{net}:{sym}@0x...)" for net, sym in sorted(ambiguous)]
    report = ImportReport(len(frame), sorted(meta), notes=notes)
    for name, group in frame.groupby("series"):
        report.gaps[str(name)] = _gaps(list(group["date"]))
    return report


def import_defillama(pools: str | Path, charts: str | Path, store: HistoryStore) -> ImportReport:
    """Files saved from DefiLlama's yields API: ``pools.json`` (``/pools``: ``data`` = objects with
    ``pool, chain, project, symbol, tvlUsd, apyBase, apy...``) and ``DIR/<pool>.json`` (``/chart/{pool}``:
    ``data`` = daily ``timestamp, tvlUsd, apy, apyBase``). Series ``<project>:<chain>:<symbol>``. APYs are
    percent; for Aave and Compound pools ``apyBase`` is a simple APR, converted per second (said in
    the report)."""
    pools_path, charts_dir = Path(pools), Path(charts)
    listing = _json(pools_path)
    entries = listing.get("data") if isinstance(listing, dict) else listing
    if not isinstance(entries, list):
        raise InputError(f"defillama pools file '{pools_path}' has no 'data' list of pools")
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    meta = []
    report = ImportReport(notes=[])
    for k, p in enumerate(entries):
        where = f"{pools_path.name} pool {k}"
        if not isinstance(p, dict) or not all(isinstance(p.get(f), str)
                                              for f in ("pool", "chain", "project", "symbol")):
            problems.append(f"{where}: needs string fields pool, chain, project, symbol")
            continue
        chart = charts_dir / f"{p['pool']}.json"
        if not chart.exists():
            report.notes.append(f"no chart file for pool {p['pool']} ({p['project']} {p['symbol']}): skipped")
            continue
        name = f"{p['project']}:{p['chain'].lower()}:{p['symbol']}"
        simple_apr = p["project"].startswith(("aave", "compound"))
        data = _json(chart)
        points = data.get("data") if isinstance(data, dict) else data
        if not isinstance(points, list):
            problems.append(f"{chart.name}: no 'data' list")
            continue
        days: dict[date, int] = {}
        for j, point in enumerate(points):
            at = f"{chart.name} point {j}"
            try:
                day = datetime.fromisoformat(str(point["timestamp"]).replace("Z", "+00:00")).astimezone(UTC).date()
            except (KeyError, ValueError, TypeError):
                problems.append(f"{at}, field 'timestamp': not an ISO time")
                continue
            if day in days:
                problems.append(f"{at}: day {day} appears twice (first at point {days[day]})")
                continue
            days[day] = j
            raw = point.get("apyBase", point.get("apy"))
            if not isinstance(raw, int | float) or isinstance(raw, bool) or not math.isfinite(raw):
                problems.append(f"{at}, field 'apyBase': {raw!r} is not a number")
                continue
            if raw < 0 or raw > 100 * MAX_RATE:
                problems.append(f"{at}, field 'apyBase': {raw} is not a percent in [0, {100 * MAX_RATE:g}]")
                continue
            rate = raw / 100
            tvl = point.get("tvlUsd")
            rows.append({"series": name, "date": day, "apy": apr_to_apy(rate) if simple_apr else rate,
                         "tvl": float(tvl) if isinstance(tvl, int | float) else None})
        meta.append({"series": name, "source": "defillama", "network": p["chain"].lower(), "symbol": p["symbol"],
                     "meta": {"pool": p["pool"], "project": p["project"], "apr_converted": simple_apr}})
        report.gaps[name] = _gaps(list(days))
        if simple_apr:
            report.notes.append(f"{name}: DefiLlama reports a simple APR for {p['project']}: compounded per second")
    InputError.collect(problems[:50], f"defillama files ('{pools_path}', '{charts_dir}')")
    if rows:
        store.write(meta, pd.DataFrame(rows))
    report.rows, report.series = len(rows), sorted({m["series"] for m in meta})
    return report


def import_snapshots(folder: str | Path, store: HistoryStore) -> ImportReport:
    """A folder of bondfolio snapshot files: one observation per opportunity per snapshot day, series
    ``snapshot:<chain>:<id>`` (APY, TVL, available liquidity, price, depositable)."""
    from bondfolio.inputs.snapshot import load_snapshot

    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise InputError(f"snapshot folder '{folder}' holds no .json files")
    rows: list[dict[str, Any]] = []
    meta: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, date], str] = {}
    for f in files:
        snap = load_snapshot(f)
        day = snap.as_of.timestamp.astimezone(UTC).date()
        for o in snap.opportunities:
            name = f"snapshot:{o.chain}:{o.id}"
            if (name, day) in seen:
                raise InputError(f"snapshot '{f.name}': {o.id} on {day} is also in '{seen[(name, day)]}': keep one "
                                 "snapshot per day")
            seen[(name, day)] = f.name
            meta[name] = {"series": name, "source": "snapshot", "network": o.chain, "symbol": o.asset,
                          "meta": {"id": o.id, "protocol": o.protocol}}
            rows.append({"series": name, "date": day, "apy": o.apy, "tvl": o.tvl,
                         "available_liquidity": o.available_liquidity, "price": o.price, "frozen": not o.depositable})
    frame = pd.DataFrame(rows)
    store.write(list(meta.values()), frame)
    report = ImportReport(len(frame), sorted(meta))
    for name, group in frame.groupby("series"):
        report.gaps[str(name)] = _gaps(list(group["date"]))
    return report


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"file '{path}' does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"file '{path}' is not valid UTF-8 JSON: {exc}") from None
