"""``replay``: re-solve a record from its own inputs and compare the new record with it.

Replay verdicts:

- ``identical``: the new record's ``record_sha256`` equals the stored one, i.e. its canonical JSON
  (everything but ``timing``) is byte-identical. Expected on the same software versions.
- ``equivalent``: not byte-identical, but every number is within :data:`REPLAY_TOLERANCE` (amounts and
  tokens at least within 1e-7 of NAV, see :data:`MONEY`) and every
  string and flag is the same, except informational fields (software versions, solver attempts and
  options, binding flags). Expected across library versions or machines.
- ``different``: anything else (the command exits 5).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bondfolio.audit._values import is_number, short
from bondfolio.errors import BondfolioError
from bondfolio.solver.record import DecisionRecord, hashed_part, load_decision

__all__ = ["REPLAY_TOLERANCE", "Difference", "ReplayResult", "compare_records", "replay"]

#: Tolerances of an ``equivalent`` replay: ``|a - b| <= abs + rel * max(|a|, |b|)``.
#:
#: - values: 1e-7 absolute (the independent check's tolerance on weights, as a fraction of NAV) plus
#:   1e-6 relative; solvers stop at a 1e-9 duality gap, so re-solves agree far closer than this;
#: - duals: 1e-6 absolute (0.01 bp per unit of bound) plus 1e-3 relative: multipliers are less
#:   accurate than primal values and may shift between degenerate optimal vertices.
REPLAY_TOLERANCE: dict[str, tuple[float, float]] = {"value": (1e-7, 1e-6), "dual": (1e-6, 1e-3)}

#: Leaves in the base currency and in tokens (allocation, trade and cash rows): their absolute tolerance
#: is the values' 1e-7 taken as a fraction of NAV, as a weight's is (a replay of a $100m book must not
#: fail on a position of $1e-5 against $2e-5: solver noise at 1e-13 of NAV), and for tokens the same
#: at the row's price (its amount over its tokens).
MONEY = frozenset({"amount", "current_amount", "trade_amount"})
TOKENS = frozenset({"tokens", "trade_tokens"})

#: Paths whose differences are reported but never make a replay fail.
INFORMATIONAL = ("provenance.versions", "solver.attempts", "solver.options", "solver.name", "solver.status",
                 "solver.inaccurate", "solver.cvar", "solver.order", "solver.order_from", "metrics.solver_objective",
                 "rate_impact.envelope", "check.worst.constraint", "check.worst.row")
"""(The order of solvers and which row is the check's worst follow the software version and solver noise:
the worst row's violation is compared as a number.)"""


@dataclass(frozen=True)
class Difference:
    """One leaf that differs between two records."""

    path: str
    old: Any
    new: Any
    informational: bool = False

    @property
    def delta(self) -> float | None:
        if is_number(self.old) and is_number(self.new):
            return float(self.new) - float(self.old)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new, "delta": self.delta,
                "informational": self.informational}

    def line(self) -> str:
        delta = self.delta
        extra = f"  ({delta:+.3g})" if delta is not None else ""
        note = "  [informational]" if self.informational else ""
        return f"{self.path}: {short(self.old)} -> {short(self.new)}{extra}{note}"


def compare_records(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Difference]:
    """Differences between two records' hashed parts beyond :data:`REPLAY_TOLERANCE` (the embedded
    inputs are compared by their sha256 in ``provenance``, not leaf by leaf)."""
    a = {k: v for k, v in hashed_part(old).items() if k != "inputs"}
    b = {k: v for k, v in hashed_part(new).items() if k != "inputs"}
    metrics = a.get("metrics")
    nav = metrics.get("nav") if isinstance(metrics, dict) else None
    money = REPLAY_TOLERANCE["value"][0] * abs(float(cast(float, nav))) if is_number(nav) else 0.0
    return list(_walk(a, b, "", money))


def _informational(path: str) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in INFORMATIONAL)


def _walk(a: Any, b: Any, path: str, money: float, floor: float = 0.0) -> Iterator[Difference]:
    """The differences below ``a`` and ``b``; ``money`` is the absolute tolerance of a currency amount
    (1e-7 of NAV), ``floor`` the absolute tolerance this leaf gets at least (see :data:`MONEY`)."""
    info = _informational(path)
    if isinstance(a, dict) and isinstance(b, dict):
        price = _price(a)
        for key in [*a, *(k for k in b if k not in a)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:  # a part one of the records has (e.g. one written before it existed)
                yield Difference(sub, a.get(key, "<absent>"), b.get(key, "<absent>"), _informational(sub))
            elif key != "binding":  # a flag derived from the slack, whose value is compared
                least = money if key in MONEY else money / price if key in TOKENS else 0.0
                yield from _walk(a[key], b[key], sub, money, least)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield Difference(f"{path}.length", len(a), len(b), info)
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from _walk(x, y, f"{path}[{_row_name(x, i)}]", money)
        return
    if is_number(a) and is_number(b):
        abs_tol, rel_tol = REPLAY_TOLERANCE["dual" if path.endswith(".dual") else "value"]
        if abs(float(a) - float(b)) > max(abs_tol, floor) + rel_tol * max(abs(float(a)), abs(float(b))):
            yield Difference(path, a, b, info)
        return
    if a != b:
        yield Difference(path, a, b, info)


def _price(row: Mapping[str, Any]) -> float:
    """A row's price in base currency per token (its amount over its tokens), 1 where it has none."""
    for amount, tokens in (("amount", "tokens"), ("trade_amount", "trade_tokens")):
        x, t = row.get(amount), row.get(tokens)
        if is_number(x) and is_number(t) and float(cast(float, t)) != 0.0 and float(cast(float, x)) != 0.0:
            return abs(float(cast(float, x)) / float(cast(float, t)))
    return 1.0


@dataclass
class ReplayResult:
    """The verdict of a replay and the differences found."""

    verdict: str
    """``identical``, ``equivalent`` or ``different``."""
    stored_sha256: str
    new_sha256: str | None
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None
    """Why the re-solve failed, when it did (the verdict is then ``different``)."""
    record: DecisionRecord | None = None
    """The new record."""

    @property
    def ok(self) -> bool:
        return self.verdict in ("identical", "equivalent")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "stored_sha256": self.stored_sha256, "new_sha256": self.new_sha256,
                "tolerance": {k: {"abs": a, "rel": r} for k, (a, r) in REPLAY_TOLERANCE.items()},
                "error": self.error, "differences": [d.to_dict() for d in self.differences]}

    def text(self, limit: int = 50) -> str:
        if self.verdict == "identical":
            return f"identical: the re-solved record's sha256 {self.stored_sha256} matches byte for byte\n"
        lines = []
        if self.error is not None:
            lines.append(f"different: the re-solve failed: {self.error}")
        elif self.verdict == "equivalent":
            lines.append(f"equivalent within tolerance (values {REPLAY_TOLERANCE['value']}, duals "
                         f"{REPLAY_TOLERANCE['dual']} as (abs, rel)); not byte-identical: sha256 "
                         f"{self.stored_sha256[:16]}… stored, {str(self.new_sha256)[:16]}… now")
        else:
            material = [d for d in self.differences if not d.informational]
            lines.append(f"different: {len(material)} values differ beyond tolerance")
        shown = sorted(self.differences, key=lambda d: d.informational)
        lines += [f"  {d.line()}" for d in shown[:limit]]
        if len(shown) > limit:
            lines.append(f"  ... and {len(shown) - limit} more (--format json lists all)")
        return "\n".join(lines) + "\n"


def replay(decision: DecisionRecord | str | Path | Mapping[str, Any], snapshot: Any = None, policy: Any = None,
           holdings: Any = None) -> ReplayResult:
    """Re-solve a decision record from its own inputs and compare the new record with it.

    Inputs not embedded in the record (or given to override them) must hash to what the record
    names. Raises :class:`~bondfolio.errors.InputError` for a record that fails verification; a
    re-solve that fails is reported as a ``different`` verdict carrying the error.
    """
    from bondfolio.solver.api import allocate

    record = load_decision(decision)
    snap, pol, hold = record.inputs_for(snapshot, policy, holdings)
    try:
        dpp = record.solver.options.get("ignore_dpp") is False  # solved as a compiled (DPP) program was
        new = allocate(snap, pol, hold, embed_inputs=record.embedded, dpp=dpp).record
    except BondfolioError as exc:
        return ReplayResult("different", record.sha256, None, error=f"{type(exc).__name__}: {exc}")
    if new.sha256 == record.sha256:
        return ReplayResult("identical", record.sha256, new.sha256, record=new)
    differences = compare_records(record.to_dict(), new.to_dict())
    verdict = "equivalent" if all(d.informational for d in differences) else "different"
    return ReplayResult(verdict, record.sha256, new.sha256, differences, record=new)


def _row_name(x: Any, i: int) -> str:
    if isinstance(x, dict):
        for key in ("id", "name"):
            if isinstance(x.get(key), str):
                return str(x[key])
        if isinstance(x.get("constraint"), str) and isinstance(x.get("row"), str):
            return f"{x['constraint']}:{x['row']}"
    return str(i)
