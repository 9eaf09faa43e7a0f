"""Command line: ``bondfolio allocate | validate | schema``.

Exit codes: 0 ok, 2 invalid input, 3 infeasible, 4 solver failure (1 for anything unexpected).
``--out`` files are written atomically (a temporary file in the same folder, then renamed) and only
on success, so a failed run never leaves a partial or stale-looking file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bondfolio.errors import BondfolioError, InputError, exit_code_for

__all__ = ["main", "write_atomic"]

EPILOG = "exit codes: 0 ok, 2 invalid input, 3 infeasible policy, 4 solver failure"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write '{path}': folder '{folder}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

    val = sub.add_parser("validate", help="validate input files without solving",
                         description="Validate a snapshot, and optionally a policy and holdings against it "
                                     "(every field, id and reference), without solving.", epilog=EPILOG)
    val.add_argument("snapshot", type=Path, metavar="SNAPSHOT", help="snapshot JSON file")
    val.add_argument("policy", type=Path, nargs="?", metavar="POLICY", help="policy TOML (or JSON) file")
    val.add_argument("--holdings", type=Path, metavar="FILE", help="current holdings JSON file")

    sch = sub.add_parser("schema", help="print the JSON Schema of an input format",
                         description="Print the JSON Schema of the snapshot, holdings or policy format.")
    sch.add_argument("which", choices=("snapshot", "holdings", "policy"), nargs="?", default="snapshot",
                     help="which format (default: snapshot)")
    return parser


def _version() -> str:
    import bondfolio

    return bondfolio.__version__


def _allocate(args: argparse.Namespace) -> int:
    import bondfolio

    decision = bondfolio.allocate(args.snapshot, args.policy, args.holdings)
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


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(schema(args.which), indent=2))
    return 0


def schema(which: str) -> dict[str, Any]:
    """JSON Schema of an input format; the policy's constraints are a union tagged by ``kind``."""
    from typing import Annotated, Union

    from pydantic import Field, create_model

    from bondfolio.inputs import Holdings, Policy, Snapshot, constraint_kinds

    if which == "snapshot":
        return Snapshot.model_json_schema(by_alias=True)
    if which == "holdings":
        return Holdings.model_json_schema(by_alias=True)
    kinds = tuple(constraint_kinds().values())
    union = Annotated[Union[kinds], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
    model = create_model("Policy", __base__=Policy, constraints=(tuple[union, ...], ()))
    return model.model_json_schema()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    handler = {"allocate": _allocate, "validate": _validate, "schema": _schema}[args.command]
    try:
        return handler(args)
    except BondfolioError as exc:
        print(f"bondfolio {args.command}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
