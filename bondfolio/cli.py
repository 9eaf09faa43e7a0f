"""Command line: ``bondfolio allocate | validate | snapshot | holdings | plan | risk-model | stress | replay |
explain | diff | frontier | report | schema``.

Exit codes: 0 ok, 2 invalid input (including a decision record that fails verification), 3
infeasible (with a diagnosis), 4 solver failure, 5 a replay that differs, 6 chain failure, 8 a plan
that is flagged (not clean) or no longer fits the chain (1 for anything unexpected).
``--out`` files are written atomically (a temporary file in the same folder, then renamed) and only
on success, so a failed run never leaves a partial or stale-looking file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bondfolio.errors import BondfolioError, InputError, exit_code_for
from bondfolio.files import write_atomic
from bondfolio.schemas import SCHEMAS, schema

__all__ = ["main", "write_atomic"]

EPILOG = "exit codes: 0 ok, 2 invalid input, 3 infeasible policy, 4 solver failure"
REPLAY_EPILOG = EPILOG + ", 5 the replay differs from the record"

#: Exit code of a replay whose answer differs from the record.
REPLAY_DIFFERS = 5
SNAPSHOT_EPILOG = EPILOG + ", 6 chain or RPC failure"

#: Exit code of ``plan`` when the plan is not clean, or of ``plan --verify`` when it no longer fits.
PLAN_UNFIT = 8
PLAN_EPILOG = SNAPSHOT_EPILOG + ", 8 the plan is flagged (not clean) or no longer fits"


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: give 0 or more")
    return value


def positive(text: str) -> int:
    """An argparse type: a whole number, 1 or more."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bondfolio",
        description="Allocation engine for on-chain fixed-income portfolios.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"bondfolio {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    alloc = sub.add_parser("allocate", help="solve a policy on a snapshot and print or write the decision",
                           description="Solve POLICY on SNAPSHOT and report the verified target allocation, "
                                       "trades, metrics, constraint audit and check.", epilog=EPILOG)
    alloc.add_argument("snapshot", type=Path, metavar="SNAPSHOT", help="snapshot JSON file")
    alloc.add_argument("policy", type=Path, metavar="POLICY", help="policy TOML (or JSON) file")
    alloc.add_argument("--holdings", type=Path, metavar="FILE", help="current holdings JSON file")
    alloc.add_argument("--out", type=Path, metavar="FILE",
                       help="write the decision here (atomically, only on success); stdout gets the table")
    alloc.add_argument("--format", choices=("table", "json", "csv"), default=None,
                       help="output format (default: table on stdout, json with --out)")
    alloc.add_argument("--no-embed", action="store_true",
                       help="do not embed the inputs in the decision record (only their sha256: replay, explain and "
                            "diff then need the input files)")

    val = sub.add_parser("validate", help="validate input files without solving",
                         description="Validate a snapshot, and optionally a policy and holdings against it "
                                     "(every field, id and reference), without solving.", epilog=EPILOG)
    val.add_argument("snapshot", type=Path, metavar="SNAPSHOT", help="snapshot JSON file")
    val.add_argument("policy", type=Path, nargs="?", metavar="POLICY", help="policy TOML (or JSON) file")
    val.add_argument("--holdings", type=Path, metavar="FILE", help="current holdings JSON file")

    snap = sub.add_parser("snapshot", help="read markets from the chain into a snapshot",
                          description="Read every market of MARKETS.toml at one pinned block per chain and "
                                      "write a snapshot that 'bondfolio allocate' accepts. Read-only: no key is "
                                      "accepted and no transaction is sent.", epilog=SNAPSHOT_EPILOG)
    snap.add_argument("--markets", type=Path, required=True, metavar="MARKETS.toml", help="markets to read")
    snap.add_argument("--out", type=Path, required=True, metavar="SNAPSHOT.json", help="where to write (atomic)")
    snap.add_argument("--rpc", action="append", default=[], metavar="[CHAIN=]URL",
                      help="JSON-RPC URL for every chain, or CHAIN=URL (repeatable); default: "
                           "BONDFOLIO_RPC_URL_<CHAIN> or BONDFOLIO_RPC_URL")
    snap.add_argument("--block", type=count, metavar="N", help="block number to pin (default: latest)")
    snap.add_argument("--risk", type=Path, metavar="RISK.toml", help="volatilities of the default factor model")

    hold = sub.add_parser("holdings", help="read an account's positions in every market into a holdings file",
                          description="Read ACCOUNT's position in every market of MARKETS.toml, and its idle "
                                      "balance of each asset, at one pinned block per chain, into the holdings format "
                                      "'bondfolio allocate' takes (base currency and token base units). Read-only.",
                          epilog=SNAPSHOT_EPILOG)
    hold.add_argument("--markets", type=Path, required=True, metavar="MARKETS.toml", help="markets to read")
    hold.add_argument("--account", required=True, metavar="ADDRESS",
                      help="the account (a Safe) whose positions to read")
    hold.add_argument("--out", type=Path, required=True, metavar="HOLDINGS.json", help="where to write (atomic)")
    hold.add_argument("--rpc", action="append", default=[], metavar="[CHAIN=]URL",
                      help="JSON-RPC URL for every chain, or CHAIN=URL (repeatable); default: the environment")
    hold.add_argument("--block", type=count, metavar="N", help="block number to pin (default: latest)")

    pl = sub.add_parser("plan", help="turn a decision into ordered legs and an unsigned Safe batch",
                        description="Turn DECISION.json into an ordered, verified execution plan for the Safe at "
                                    "--safe, and the Transaction Builder batch file its owners review and sign; or, "
                                    "with --verify PLAN.json, re-read the chain and say leg by leg whether a plan "
                                    "still fits. Read-only: no key, no transaction.",
                        epilog=PLAN_EPILOG)
    pl.add_argument("decision", type=Path, nargs="?", metavar="DECISION.json", help="decision record (allocate --out)")
    pl.add_argument("--safe", metavar="ADDRESS", help="the Safe that holds the positions and executes the batch")
    pl.add_argument("--multisend", metavar="ADDRESS",
                    help="MultiSendCallOnly address (default: @safe-global/safe-deployments' for the chain)")
    pl.add_argument("--safe-version", default="1.4.1", choices=("1.3.0", "1.4.1"), help="the Safe's version")
    pl.add_argument("--out", type=Path, metavar="PLAN.json", help="write the sealed plan here (atomic)")
    pl.add_argument("--safe-batch", type=Path, metavar="BATCH.json",
                    help="write the Transaction Builder batch file here (one chain; BATCH-<chain>.json for several)")
    pl.add_argument("--format", choices=("table", "json"), default="table")
    pl.add_argument("--verify", type=Path, metavar="PLAN.json", help="re-read the chain and check a written plan")
    pl.add_argument("--rpc", action="append", default=[], metavar="[CHAIN=]URL",
                    help="with --verify: JSON-RPC URL for every chain, or CHAIN=URL (repeatable)")
    pl.add_argument("--max-age", type=count, default=3600, metavar="SECONDS",
                    help="with --verify: the oldest snapshot block a plan may be built on (default: 3600)")

    rc = sub.add_parser("rebalance-check", help="act or hold: does the best move pay for itself over the horizon?",
                        description="Weigh the best gated move's gain over [rebalance] horizon_days against its gas, "
                                    "slippage and trading costs, check the must-act triggers, and say act (exit 0) or "
                                    "hold (exit 7), with reasons. On act, --out gets the decision record, so "
                                    "'rebalance-check ... --out d.json && plan d.json ...' composes.",
                        epilog=EPILOG + ", 7 hold")
    rc.add_argument("snapshot", type=Path, metavar="SNAPSHOT", help="snapshot JSON file")
    rc.add_argument("policy", type=Path, metavar="POLICY", help="policy TOML (or JSON) file")
    rc.add_argument("--holdings", type=Path, required=True, metavar="FILE", help="current holdings JSON file")
    rc.add_argument("--last", type=Path, metavar="DECISION.json", help="the last decision (for the cooldown)")
    rc.add_argument("--safe", metavar="ADDRESS", help="the Safe for the plan on act (default: the holdings' account)")
    rc.add_argument("--out", type=Path, metavar="D.json", help="on act, write the gated decision record here")
    rc.add_argument("--multisend", metavar="ADDRESS", help="MultiSendCallOnly address for the plan (a local node)")
    rc.add_argument("--verdict", type=Path, metavar="V.json", help="write the sealed verdict record here")
    rc.add_argument("--format", choices=("table", "json"), default="table")

    mo = sub.add_parser("monitor", help="one read-only pass: snapshot, health of held markets, drift, the verdict",
                        description="Read every market at the latest block, report the health of every held market, "
                                    "the drift of the holdings and the gate's verdict: one JSON event on stdout, one "
                                    "human line on stderr; with --out, files written atomically into DIR only on "
                                    "success.", epilog=SNAPSHOT_EPILOG + ", 7 hold")
    mo.add_argument("--markets", type=Path, required=True, metavar="MARKETS.toml", help="markets to read")
    mo.add_argument("--rpc", action="append", default=[], metavar="[CHAIN=]URL",
                    help="JSON-RPC URL for every chain, or CHAIN=URL (repeatable); default: the environment")
    mo.add_argument("--policy", type=Path, required=True, metavar="POLICY", help="policy TOML (or JSON) file")
    mo.add_argument("--holdings", type=Path, required=True, metavar="FILE", help="current holdings JSON file")
    mo.add_argument("--last", type=Path, metavar="DECISION.json", help="the last decision (drift and cooldown)")
    mo.add_argument("--overrides", type=Path, metavar="FILE", help="failure-source news and field overrides")
    mo.add_argument("--out", type=Path, metavar="DIR", help="write snapshot, verdict, decision and plan here")
    mo.add_argument("--multisend", metavar="ADDRESS", help="MultiSendCallOnly address for the plan (a local node)")

    hi = sub.add_parser("history", help="fill the history store (DuckDB) from saved data",
                        description="bondfolio history import SOURCE ...: fill a DuckDB history store "
                                    "(see bondfolio.inputs.store for the schema).")
    hsub = hi.add_subparsers(dest="history_command", required=True, metavar="import")
    imp = hsub.add_parser("import", help="import one source")
    isub = imp.add_subparsers(dest="source", required=True, metavar="SOURCE")
    aave = isub.add_parser("aave-v3-daily", help="the daily Aave v3 reserve CSV (../shared/data/aave-v3-daily)")
    aave.add_argument("csv", type=Path, metavar="CSV")
    llama = isub.add_parser("defillama", help="files saved from DefiLlama's yields API")
    llama.add_argument("--pools", type=Path, required=True, metavar="pools.json")
    llama.add_argument("--charts", type=Path, required=True, metavar="DIR", help="one <pool>.json chart per pool")
    snaps = isub.add_parser("snapshots", help="a folder of bondfolio snapshot files")
    snaps.add_argument("folder", type=Path, metavar="DIR")
    for cmd in (aave, llama, snaps):
        cmd.add_argument("--store", type=Path, required=True, metavar="STORE.duckdb", help="the history store")

    def backtest_options(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("policy", type=Path, metavar="POLICY", help="policy TOML (or JSON) file")
        cmd.add_argument("--history", type=Path, required=True, metavar="STORE", help="history store (DuckDB)")
        cmd.add_argument("--universe", type=Path, required=True, metavar="U.toml", help="series -> opportunities")
        cmd.add_argument("--start", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
        cmd.add_argument("--end", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
        cmd.add_argument("--every", default="7d", metavar="1d|7d", help="rebalance cadence (default: 7d)")
        cmd.add_argument("--nav", type=float, default=1_000_000.0, metavar="X", help="starting NAV, base currency")
        cmd.add_argument("--gate", action="store_true", help="rebalance through the gate (rebalance-check)")

    bt = sub.add_parser("backtest", help="replay a policy over history against baselines",
                        description="Replay POLICY day by day over the history store, with its costs, against "
                                    "buy-and-hold, equal weight and rate chasing; every step's decision sealed in "
                                    "DIR/decisions.", epilog=EPILOG)
    backtest_options(bt)
    bt.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")

    sw = sub.add_parser("sweep", help="backtest every combination of a parameter grid on Dask",
                        description="One backtest per combination of GRID.toml's overrides, on a Dask cluster "
                                    "(local by default, or --address).", epilog=EPILOG)
    backtest_options(sw)
    sw.add_argument("--grid", type=Path, required=True, metavar="GRID.toml", help="[grid] 'path' = [values]")
    sw.add_argument("--engine", choices=("dask", "ray"), default="dask", help="distributed engine (dask)")
    sw.add_argument("--address", metavar="ADDR", help="an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    sw.add_argument("--workers", type=positive, default=2, metavar="N", help="local cluster workers (default: 2)")
    sw.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (sweep.csv, sweep.png)")

    sub.add_parser("mcp", help="serve the engine to agents over the Model Context Protocol (stdio)",
                   description="Serve bondfolio's tools (validate, allocate, explain, diagnose, stress, replay, diff, "
                               "plan, rebalance_check, snapshot, schema), the JSON Schemas and the bundled example "
                               "over MCP on stdio. Read-only: no key, no transaction; the RPC URL only from the "
                               "environment. BONDFOLIO_MCP_DIR: where records are written.")

    rm = sub.add_parser("risk-model", help="estimate a factor risk model from daily history into a snapshot",
                        description="Estimate the snapshot's risk.factors from daily APY and price history "
                                    "(see bondfolio.inputs.history).")
    rm.add_argument("history", type=Path, metavar="HISTORY.csv", help="date, apy:<id>, price:<asset>, rate columns")
    rm.add_argument("--snapshot", type=Path, required=True, metavar="S.json", help="snapshot to estimate for")
    rm.add_argument("--out", type=Path, required=True, metavar="S2.json", help="where to write (atomic)")
    rm.add_argument("--method", choices=("ledoit-wolf", "oas", "sample"), default="ledoit-wolf",
                    help="factor covariance estimator (default: ledoit-wolf)")
    rm.add_argument("--min-days", type=positive, default=60, metavar="N",
                    help="fewest observed daily changes per opportunity (default: 60)")

    st = sub.add_parser("stress", help="loss of a decision in every stress scenario, worst first",
                        description="Losses of a decision's allocation under joint failures, rate shocks, depegs, "
                                    "a freeze and sampled scenarios.")
    st.add_argument("decision", type=Path, metavar="DECISION.json", help="decision JSON (allocate --out)")
    st.add_argument("--snapshot", type=Path, metavar="S.json",
                    help="the snapshot the decision was made from (default: the one embedded in the record; "
                         "its sha256 is checked)")
    st.add_argument("--scenarios", type=Path, metavar="FILE",
                    help="scenario settings TOML/JSON (default: the decision's cvar scenarios, else defaults)")
    st.add_argument("--constraint", metavar="LABEL",
                    help="the cvar constraint whose scenarios to use, when the decision's policy has several")
    st.add_argument("--format", choices=("table", "json"), default="table")

    def record_inputs(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("decision", type=Path, metavar="DECISION.json", help="decision record (allocate --out)")
        for name in ("snapshot", "policy", "holdings"):
            cmd.add_argument(f"--{name}", type=Path, metavar="FILE",
                             help=f"the {name} file, for records written with --no-embed (its sha256 is checked)")
        cmd.add_argument("--format", choices=("text", "json"), default="text")

    rp = sub.add_parser("replay", help="re-solve a decision record and compare (exit 5 when it differs)",
                        description="Verify a decision record's sha256, re-solve it from its own inputs and compare: "
                                    "identical (byte for byte), equivalent (within the stated tolerance) or different "
                                    "(the differences are printed; exit 5).", epilog=REPLAY_EPILOG)
    record_inputs(rp)
    rp.add_argument("--out", type=Path, metavar="FILE", help="also write the new record here")

    ex = sub.add_parser("explain", help="binding constraints in bp, marginal yields, risk contributions",
                        description="Explain a decision: what relaxing each binding constraint is worth (dual estimate "
                                    "and an exact re-solve), each position's marginal yield against its costs, and "
                                    "risk contributions per position and protocol.", epilog=EPILOG)
    record_inputs(ex)
    ex.add_argument("--no-resolve", action="store_true", help="dual estimates only (no re-solves)")

    df = sub.add_parser("diff", help="what changed between two decisions, and which input changes moved it most",
                        description="Compare decision records A and B: input changes, allocation changes, and (with "
                                    "embedded inputs) each group of input changes applied alone to A and re-solved, "
                                    "ranked by how far it moves the allocation.", epilog=EPILOG)
    df.add_argument("a", type=Path, metavar="A.json")
    df.add_argument("b", type=Path, metavar="B.json")
    df.add_argument("--no-attribution", action="store_true", help="skip the re-solves")
    df.add_argument("--max-groups", type=count, default=25, metavar="N", help="re-solve at most N groups (default 25)")
    df.add_argument("--format", choices=("text", "json"), default="text")

    fr = sub.add_parser("frontier", help="efficient frontier: risk aversion swept over one compiled program",
                        description="Solve POLICY on SNAPSHOT for a grid of risk aversions (one compiled program, "
                                    "parameters updated) and write the points as CSV, and a PNG chart.", epilog=EPILOG)
    fr.add_argument("snapshot", type=Path, metavar="SNAPSHOT")
    fr.add_argument("policy", type=Path, metavar="POLICY")
    fr.add_argument("--holdings", type=Path, metavar="FILE")
    fr.add_argument("--points", type=positive, default=50, metavar="N", help="number of points (default 50)")
    fr.add_argument("--out", type=Path, metavar="FILE.csv", help="write the CSV here (default: stdout)")
    fr.add_argument("--png", type=Path, metavar="FILE.png", help="write the chart here")

    rep = sub.add_parser("report", help="one self-contained HTML page for a decision",
                         description="Write an HTML report of a decision record: metrics, allocation, frontier, risk "
                                     "contributions, binding constraints, check and provenance (charts embedded).",
                         epilog=EPILOG)
    record_inputs(rep)
    rep.add_argument("--out", type=Path, required=True, metavar="REPORT.html", help="where to write (atomic)")
    rep.add_argument("--points", type=count, default=25, metavar="N", help="frontier points (0: no frontier)")
    rep.add_argument("--no-resolve", action="store_true", help="dual estimates only for binding constraints")

    sch = sub.add_parser("schema", help="print the JSON Schema of a file format",
                         description="Print the JSON Schema of the snapshot, holdings, policy or decision record "
                                     "format.")
    sch.add_argument("which", choices=SCHEMAS, nargs="?", default="snapshot",
                     help="which format (default: snapshot)")
    return parser


def _version() -> str:
    import bondfolio

    return bondfolio.__version__


def _allocate(args: argparse.Namespace) -> int:
    import bondfolio

    decision = bondfolio.allocate(args.snapshot, args.policy, args.holdings, embed_inputs=not args.no_embed)
    fmt = args.format or ("json" if args.out else "table")
    render = {"table": decision.table, "json": decision.to_json, "csv": decision.to_csv}[fmt]
    text = render()
    if args.out:
        write_atomic(args.out, text)
        sys.stdout.write(decision.table())
        print(f"decision written to {args.out} ({fmt})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _validate(args: argparse.Namespace) -> int:
    import bondfolio

    summary = bondfolio.validate(args.snapshot, args.policy, args.holdings)
    lines = [f"snapshot: {summary['opportunities']} opportunities, risk model in {summary['risk']} form: valid"]
    if args.holdings:
        lines.append("holdings: valid")
    if "policy" in summary:
        rows = summary["constraints"]
        lines.append(f"policy '{summary['policy']}': NAV {summary['nav']:,.2f}, {len(rows)} constraints "
                     f"({sum(rows.values())} rows): valid")
        lines.extend(f"  {label}: {count} rows" for label, count in rows.items())
    print("\n".join(lines))
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    from bondfolio.adapters.risk import load_risk_prior
    from bondfolio.adapters.snapshot import environment, load_markets, read_snapshot, resolve_rpc, stderr_progress

    _, specs = load_markets(args.markets)
    rpc = resolve_rpc(sorted({s.chain for s in specs}), args.rpc, environment())
    snapshot, report = read_snapshot(args.markets, rpc, args.block, load_risk_prior(args.risk), stderr_progress)
    write_atomic(args.out, snapshot.model_dump_json(indent=1, by_alias=True, exclude_none=True) + "\n")
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for chain, info in report.items():
        if chain == "details":
            continue
        print(f"chain '{chain}': block {info['block']} ({info['hash'][:10]}…), {info['markets']} markets, "
              f"{info['rounds']} rounds, {info['requests']} requests"
              + (", Multicall3" if info["multicall3"] else ", batched JSON-RPC"))
    print(f"snapshot written to {args.out}: {len(snapshot.opportunities)} opportunities")
    return 0


def _holdings(args: argparse.Namespace) -> int:
    from bondfolio.adapters.holdings import read_holdings
    from bondfolio.adapters.snapshot import environment, load_markets, resolve_rpc, stderr_progress

    _, specs = load_markets(args.markets)
    rpc = resolve_rpc(sorted({s.chain for s in specs}), args.rpc, environment())
    holdings, _ = read_holdings(args.markets, rpc, args.account, args.block, stderr_progress)
    write_atomic(args.out, holdings.model_dump_json(indent=1, by_alias=True) + "\n")
    if sys.stderr.isatty():
        print(file=sys.stderr)
    blocks = ", ".join(f"{c} block {n}" for c, n in (holdings.blocks or {}).items())
    print(f"holdings of {holdings.account} at {blocks}: {len(holdings.positions)} positions worth "
          f"{sum(holdings.positions.values()):,.2f}, idle {holdings.cash:,.2f}")
    print(f"holdings written to {args.out}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    if args.verify is not None:
        from bondfolio.adapters.snapshot import environment, resolve_rpc
        from bondfolio.execution.plan import load_plan
        from bondfolio.execution.verify import verify_plan

        plan = load_plan(args.verify)
        rpc = resolve_rpc(sorted({c.chain for c in plan.chains}), args.rpc, environment())
        result = verify_plan(plan, rpc, args.max_age)
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n" if args.format == "json" else result.text())
        return 0 if result.fits else PLAN_UNFIT
    if args.decision is None or args.safe is None:
        raise InputError("plan needs DECISION.json and --safe ADDRESS (or --verify PLAN.json)")
    from bondfolio.execution.plan import build_plan

    plan = build_plan(args.decision, args.safe, args.multisend, args.safe_version)
    if args.out:
        write_atomic(args.out, plan.to_json())
    if args.safe_batch:
        files = plan.batch_files()
        for chain, batch in files.items():
            path = args.safe_batch if len(files) == 1 else args.safe_batch.with_name(
                f"{args.safe_batch.stem}-{chain}{args.safe_batch.suffix}")
            write_atomic(path, json.dumps(batch, indent=2) + "\n")
    sys.stdout.write(plan.to_json() if args.format == "json" else plan.table())
    return 0 if plan.clean else PLAN_UNFIT


def _rebalance_check(args: argparse.Namespace) -> int:
    from bondfolio.execution.gate import HOLD_EXIT, rebalance_check

    verdict = rebalance_check(args.snapshot, args.policy, args.holdings, args.last, args.safe, args.multisend)
    if args.verdict:
        write_atomic(args.verdict, verdict.to_json())
    if args.out and verdict.decision is not None:
        write_atomic(args.out, json.dumps(verdict.decision, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.write(verdict.to_json() if args.format == "json" else verdict.table())
    return 0 if verdict.verdict == "act" else HOLD_EXIT


def _monitor(args: argparse.Namespace) -> int:
    from bondfolio.adapters.snapshot import environment, load_markets, resolve_rpc
    from bondfolio.execution.gate import HOLD_EXIT
    from bondfolio.execution.monitor import monitor

    if args.out is not None and not args.out.is_dir():
        raise InputError(f"--out '{args.out}' is not a folder: create it first")
    _, specs = load_markets(args.markets)
    rpc = resolve_rpc(sorted({s.chain for s in specs}), args.rpc, environment())
    report = monitor(args.markets, rpc, args.policy, args.holdings, args.last, args.overrides, args.multisend)
    if args.out is not None:
        v = report.verdict
        files = {"snapshot.json": report.snapshot.model_dump_json(indent=1, by_alias=True, exclude_none=True) + "\n",
                 "verdict.json": v.to_json()}
        if v.decision is not None:
            files["decision.json"] = json.dumps(v.decision, indent=2, ensure_ascii=False) + "\n"
        if v.plan is not None:
            files["plan.json"] = json.dumps(v.plan, indent=2, ensure_ascii=False) + "\n"
        for name, text in files.items():
            write_atomic(args.out / name, text)
    print(json.dumps(report.event(), separators=(",", ":")))
    print(report.line(), file=sys.stderr)
    return 0 if report.verdict.verdict == "act" else HOLD_EXIT


def _history(args: argparse.Namespace) -> int:
    from bondfolio.inputs.store import HistoryStore, import_aave_daily, import_defillama, import_snapshots

    with HistoryStore(args.store) as store:
        if args.source == "aave-v3-daily":
            report = import_aave_daily(args.csv, store)
        elif args.source == "defillama":
            report = import_defillama(args.pools, args.charts, store)
        else:
            report = import_snapshots(args.folder, store)
    sys.stdout.write(report.text())
    print(f"history store: {args.store}")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from bondfolio.backtest import backtest
    from bondfolio.backtest.report import write_outputs

    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out '{args.out}' is a file: give a folder")
    result = backtest(args.policy, args.history, args.universe, args.start, args.end, args.every, args.nav,
                      args.gate, out=args.out)
    metrics = write_outputs(result, args.out, f"backtest of {args.policy.name}")
    print(f"{'strategy':<16} {'APY':>8} {'vol':>8} {'max DD':>8} {'turnover':>9} {'costs':>12} {'rebal':>6}")
    for name, m in metrics.items():
        print(f"{name:<16} {m['realized_apy']:>8.3%} {m['volatility']:>8.3%} {m['max_drawdown']:>8.3%} "
              f"{m['turnover']:>9.2f} {sum(m['costs'].values()):>12,.0f} {m['rebalances']:>6}")
    print(f"{len(result.dates)} days, {result.seconds_per_step * 1000:.0f} ms per step; files in {args.out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from bondfolio.backtest.sweep import run_sweep

    if args.engine == "ray":
        raise InputError("--engine ray: this bondfolio runs its sweeps on Dask (pure-Python wheels, a local "
                         "cluster in about a second); use --engine dask")
    args.out.mkdir(parents=True, exist_ok=True)
    table = run_sweep(args.policy, args.grid, args.history, args.universe, args.start, args.end, args.every,
                      args.nav, args.gate, args.workers, args.address)
    write_atomic(args.out / "sweep.csv", table.drop(columns=["seconds"]).to_csv(float_format="%.8g",
                                                                                lineterminator="\n"))
    _sweep_plot(table, args.out / "sweep.png")
    sys.stdout.write(table.drop(columns=["seconds"]).to_string() + "\n")
    failed = int(table["error"].notna().sum()) if "error" in table else 0
    print(f"{len(table)} combinations, {failed} failed; table in {args.out / 'sweep.csv'}")
    return 0


def _sweep_plot(table: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = table[table["error"].isna()] if "error" in table else table
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(ok):
        sc = ax.scatter(ok["volatility"] * 100, ok["realized_apy"] * 100, c=ok["costs"], cmap="viridis")
        fig.colorbar(sc, label="costs (base currency)")
        for k, row in ok.iterrows():
            ax.annotate(str(k), (row["volatility"] * 100, row["realized_apy"] * 100), fontsize=7)
    ax.set_xlabel("volatility, %")
    ax.set_ylabel("realized APY, %")
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _mcp(args: argparse.Namespace) -> int:
    from bondfolio.mcp_server import main as serve

    serve()
    return 0


def _risk_model(args: argparse.Namespace) -> int:
    from bondfolio.inputs.history import estimate_risk

    est = estimate_risk(args.history, args.snapshot, args.method, args.min_days)
    write_atomic(args.out, est.snapshot.model_dump_json(indent=1, by_alias=True, exclude_none=True) + "\n")
    shrink = "" if est.shrinkage is None else f", shrinkage {est.shrinkage:.3f}"
    print(f"{len(est.factors)} factors ({', '.join(est.factors)}) from {est.days} days ({est.factor_days} with every "
          f"factor observed{shrink})")
    for oid, vol in est.volatility.items():
        print(f"  {oid:<40} volatility {vol:8.3%}   R2 {est.r_squared[oid]:5.2f}   {est.observations[oid]} days")
    print(f"snapshot written to {args.out}")
    return 0


def _stress(args: argparse.Namespace) -> int:
    from bondfolio.audit.stress import stress

    report = stress(args.decision, args.snapshot, args.scenarios, args.constraint)
    sys.stdout.write(report.to_json() if args.format == "json" else report.table())
    return 0


def _replay(args: argparse.Namespace) -> int:
    from bondfolio.audit.replay import replay

    result = replay(args.decision, args.snapshot, args.policy, args.holdings)
    if args.out and result.ok and result.record is not None:  # output only on success
        write_atomic(args.out, result.record.to_json())
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n" if args.format == "json" else result.text())
    return 0 if result.ok else REPLAY_DIFFERS


def _explain(args: argparse.Namespace) -> int:
    from bondfolio.audit.explain import explain

    e = explain(args.decision, args.snapshot, args.policy, args.holdings, exact=not args.no_resolve)
    sys.stdout.write(json.dumps(e.to_dict(), indent=2) + "\n" if args.format == "json" else e.text())
    return 0


def _diff(args: argparse.Namespace) -> int:
    from bondfolio.audit.diff import diff

    report = diff(args.a, args.b, attribute=not args.no_attribution, max_groups=args.max_groups)
    sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n" if args.format == "json" else report.text())
    return 0


def _frontier(args: argparse.Namespace) -> int:
    from bondfolio.audit.frontier import frontier

    f = frontier(args.snapshot, args.policy, args.holdings, points=args.points)
    text = f.to_csv()
    if args.png:
        folder = args.png.parent if str(args.png.parent) else Path(".")
        if not folder.is_dir():
            raise InputError(f"cannot write '{args.png}': folder '{folder}' does not exist")
        tmp = folder / f".{args.png.name}.tmp"
        try:
            f.write_png(tmp)
            os.replace(tmp, args.png)
        finally:
            tmp.unlink(missing_ok=True)
    if args.out:
        write_atomic(args.out, text)
        print(f"{len(f.frame)} frontier points in {f.seconds:.2f} s written to {args.out}"
              + (f", chart to {args.png}" if args.png else ""))
    else:
        sys.stdout.write(text)
    return 0


def _report(args: argparse.Namespace) -> int:
    from bondfolio.audit.report import render_report

    page = render_report(args.decision, args.snapshot, args.policy, args.holdings, points=args.points,
                         exact=not args.no_resolve)
    write_atomic(args.out, page)
    print(f"report written to {args.out} ({len(page) / 1024:.0f} KiB)")
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(schema(args.which), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    handler = {"allocate": _allocate, "validate": _validate, "snapshot": _snapshot, "schema": _schema,
               "risk-model": _risk_model, "stress": _stress, "replay": _replay, "explain": _explain,
               "diff": _diff, "frontier": _frontier, "report": _report, "holdings": _holdings,
               "plan": _plan, "rebalance-check": _rebalance_check, "monitor": _monitor, "history": _history,
               "backtest": _backtest, "sweep": _sweep, "mcp": _mcp}[args.command]
    try:
        return handler(args)
    except BondfolioError as exc:
        print(f"bondfolio {args.command}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
