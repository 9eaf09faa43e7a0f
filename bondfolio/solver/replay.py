"""``replay`` (re-solve a record and compare) and ``diff`` (what changed between two decisions and which
input changes moved the answer most).

Replay verdicts:

- ``identical``: the new record's ``record_sha256`` equals the stored one, i.e. its canonical JSON
  (everything but ``timing``) is byte-identical. Expected on the same software versions.
- ``equivalent``: not byte-identical, but every number is within :data:`REPLAY_TOLERANCE` and every
  string and flag is the same, except informational fields (software versions, solver attempts and
  options, binding flags). Expected across library versions or machines.
- ``different``: anything else (the command exits 5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bondfolio.errors import BondfolioError
from bondfolio.inputs.base import canonical_json
from bondfolio.solver.record import HASH_KEY, DecisionRecord, hashed_part, load_decision

__all__ = ["REPLAY_TOLERANCE", "DiffReport", "Difference", "ReplayResult", "compare_records", "diff", "replay"]

#: Tolerances of an ``equivalent`` replay: ``|a - b| <= abs + rel * max(|a|, |b|)``.
#:
#: - values: 1e-7 absolute (the independent check's tolerance on weights, as a fraction of NAV) plus
#:   1e-6 relative; solvers stop at a 1e-9 duality gap, so re-solves agree far closer than this;
#: - duals: 1e-6 absolute (0.01 bp per unit of bound) plus 1e-3 relative: multipliers are less
#:   accurate than primal values and may shift between degenerate optimal vertices.
REPLAY_TOLERANCE: dict[str, tuple[float, float]] = {"value": (1e-7, 1e-6), "dual": (1e-6, 1e-3)}

#: Paths whose differences are reported but never make a replay fail.
INFORMATIONAL = ("provenance.versions", "solver.attempts", "solver.options", "solver.name", "solver.status",
                 "solver.inaccurate", "metrics.solver_objective", "rate_impact.envelope")


@dataclass(frozen=True)
class Difference:
    """One leaf that differs between two records."""

    path: str
    old: Any
    new: Any
    informational: bool = False

    @property
    def delta(self) -> float | None:
        if _is_number(self.old) and _is_number(self.new):
            return float(self.new) - float(self.old)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new, "delta": self.delta,
                "informational": self.informational}

    def line(self) -> str:
        delta = self.delta
        extra = f"  ({delta:+.3g})" if delta is not None else ""
        note = "  [informational]" if self.informational else ""
        return f"{self.path}: {_short(self.old)} -> {_short(self.new)}{extra}{note}"


def compare_records(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Difference]:
    """Differences between two records' hashed parts beyond :data:`REPLAY_TOLERANCE` (the embedded
    inputs are compared by their sha256 in ``provenance``, not leaf by leaf)."""
    a = {k: v for k, v in hashed_part(old).items() if k != "inputs"}
    b = {k: v for k, v in hashed_part(new).items() if k != "inputs"}
    return list(_walk(a, b, ""))


def _walk(a: Any, b: Any, path: str) -> Iterator[Difference]:
    info = any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in INFORMATIONAL)
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                yield Difference(sub, a.get(key, "<absent>"), b.get(key, "<absent>"), info)
            elif key != "binding":  # a flag derived from the slack, whose value is compared
                yield from _walk(a[key], b[key], sub)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield Difference(f"{path}.length", len(a), len(b), info)
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from _walk(x, y, f"{path}[{_row_name(x, i)}]")
        return
    if _is_number(a) and _is_number(b):
        abs_tol, rel_tol = REPLAY_TOLERANCE["dual" if path.endswith(".dual") else "value"]
        if abs(float(a) - float(b)) > abs_tol + rel_tol * max(abs(float(a)), abs(float(b))):
            yield Difference(path, a, b, info)
        return
    if a != b:
        yield Difference(path, a, b, info)


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
    record: dict[str, Any] | None = None
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
    snap, pol, hold = record.inputs(snapshot, policy, holdings)
    try:
        new = allocate(snap, pol, hold, embed_inputs=record.embedded).to_dict()
    except BondfolioError as exc:
        return ReplayResult("different", record.sha256, None, error=f"{type(exc).__name__}: {exc}")
    if new[HASH_KEY] == record.sha256:
        return ReplayResult("identical", record.sha256, new[HASH_KEY], record=new)
    differences = compare_records(record.data, new)
    verdict = "equivalent" if all(d.informational for d in differences) else "different"
    return ReplayResult(verdict, record.sha256, new[HASH_KEY], differences, record=new)


# ---------------------------------------------------------------------------------------------- diff
@dataclass
class DiffReport:
    """What changed between decisions A and B, and which input changes moved the allocation most."""

    inputs: list[dict[str, Any]]
    """One entry per changed input item: ``{"input", "item", "changes": {field: [old, new]}}``."""
    allocation: list[dict[str, Any]]
    """Per id whose weight changed: old and new weight and amount, sorted by the size of the change."""
    metrics: dict[str, list[float]]
    """Portfolio metrics that changed: ``[old, new]``."""
    attribution: list[dict[str, Any]]
    """Per group of input changes applied alone to A: how far the allocation moved (L1 of weights)
    and the change of expected APY, largest first."""
    moved_total: float
    """L1 distance between A's and B's weights (over the union of ids)."""

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "allocation": self.allocation, "metrics": self.metrics,
                "moved_total": self.moved_total, "attribution": self.attribution}

    def text(self, limit: int = 30) -> str:
        lines = [f"inputs: {len(self.inputs)} items changed" if self.inputs else "inputs: identical"]
        for item in self.inputs[:limit]:
            changes = ", ".join(f"{k} {_short(o)} -> {_short(n)}" for k, (o, n) in list(item["changes"].items())[:6])
            lines.append(f"  {item['input']} {item['item']}: {changes}")
        if len(self.inputs) > limit:
            lines.append(f"  ... and {len(self.inputs) - limit} more")
        lines += ["", f"allocation: {len(self.allocation)} positions changed, sum |dw| = {self.moved_total:.4%} of NAV"]
        for a in self.allocation[:limit]:
            lines.append(f"  {a['id'][:40]:<40} {a['old_weight']:>8.3%} -> {a['new_weight']:>8.3%}  "
                         f"({a['new_weight'] - a['old_weight']:+.3%})")
        if self.metrics:
            lines += ["", "metrics:"]
            lines += [f"  {k}: {_short(o)} -> {_short(n)}" for k, (o, n) in self.metrics.items()]
        if self.attribution:
            lines += ["", "which input changes moved the answer (each applied alone to A; effects need not add up):"]
            for g in self.attribution:
                if g.get("error"):
                    lines.append(f"  {g['group']:<44} could not be evaluated alone: {g['error'][:120]}")
                else:
                    lines.append(f"  {g['group']:<44} moves {g['moved']:.4%} of NAV ({g['share']:.0%} of the total), "
                                 f"expected APY {g['expected_apy_change'] * 1e4:+.2f} bp")
        return "\n".join(lines) + "\n"


def diff(a: DecisionRecord | str | Path | Mapping[str, Any], b: DecisionRecord | str | Path | Mapping[str, Any],
         attribute: bool = True, max_groups: int = 25) -> DiffReport:
    """Compare two decision records (each verified on load).

    With ``attribute`` (and both records' inputs embedded), every group of input changes (one
    opportunity's fields, the risk model, the failure model, the objective, one constraint, the
    holdings...) is applied alone to A's inputs and re-solved, and the groups are ranked by how far
    they move A's allocation; at most ``max_groups`` groups are re-solved (the ones with the most
    changed fields first).
    """
    ra, rb = load_decision(a), load_decision(b)
    wa, wb = ra.weights, rb.weights
    ids = list(dict.fromkeys([*wa.index, *wb.index]))
    old = wa.reindex(ids, fill_value=0.0)
    new = wb.reindex(ids, fill_value=0.0)
    moved = np.abs(new.to_numpy() - old.to_numpy())
    nav_a, nav_b = ra.nav, rb.nav
    allocation = [{"id": i, "old_weight": float(old[i]), "new_weight": float(new[i]),
                   "old_amount": float(old[i]) * nav_a, "new_amount": float(new[i]) * nav_b}
                  for k, i in sorted(enumerate(ids), key=lambda t: -moved[t[0]]) if moved[k] > 1e-9]
    metrics = {k: [v, rb.data["metrics"].get(k)] for k, v in ra.data["metrics"].items()
               if _is_number(v) and _is_number(rb.data["metrics"].get(k))
               and abs(float(v) - float(rb.data["metrics"][k])) > 1e-12}
    groups = _input_groups(ra, rb)
    changes = [{"input": g.input, "item": g.item, "changes": g.changes} for g in groups if g.changes]
    attribution: list[dict[str, Any]] = []
    if attribute and ra.embedded and rb.embedded and groups:
        attribution = _attribute(ra, groups[:max_groups], old, ids)
        total = float(moved.sum())
        for g in attribution:
            g["share"] = g.get("moved", 0.0) / total if total > 0 else 0.0
    return DiffReport(changes, allocation, metrics, attribution, float(moved.sum()))


@dataclass
class _Group:
    input: str
    item: str
    changes: dict[str, list[Any]]
    apply: Callable[[dict[str, Any]], None]
    """Applies B's version of the item to a copy of A's canonical inputs."""


def _input_groups(ra: DecisionRecord, rb: DecisionRecord) -> list[_Group]:
    if not (ra.embedded and rb.embedded):
        pa, pb = ra.data["provenance"], rb.data["provenance"]
        return [_Group("inputs", key, {"sha256": [pa.get(f"{key}_sha256"), pb.get(f"{key}_sha256")]}, lambda d: None)
                for key in ("snapshot", "policy", "holdings") if pa.get(f"{key}_sha256") != pb.get(f"{key}_sha256")]
    ia, ib = ra.data["inputs"], rb.data["inputs"]
    groups: list[_Group] = []
    sa, sb = ia["snapshot"], ib["snapshot"]
    oa = {o["id"]: o for o in sa["opportunities"]}
    ob = {o["id"]: o for o in sb["opportunities"]}
    if list(oa) == list(ob):
        for k, oid in enumerate(oa):
            if oa[oid] != ob[oid]:
                groups.append(_Group("snapshot", f"opportunity '{oid}'", _field_changes(oa[oid], ob[oid]),
                                     _setter(("snapshot", "opportunities", k), ob[oid])))
        if sa["risk"] != sb["risk"]:
            groups.append(_Group("snapshot", "risk model", _field_changes(sa["risk"], sb["risk"]),
                                 _setter(("snapshot", "risk"), sb["risk"])))
    else:
        added = [i for i in ob if i not in oa]
        removed = [i for i in oa if i not in ob]
        changes = ({"added": [[], added], "removed": [removed, []]} if added or removed
                   else {"order": [list(oa), list(ob)]})

        def swap(d: dict[str, Any]) -> None:
            d["snapshot"]["opportunities"] = sb["opportunities"]
            d["snapshot"]["risk"] = sb["risk"]

        groups.append(_Group("snapshot", "opportunity set and risk model", changes, swap))
    for key in sorted({*sa, *sb} - {"opportunities", "risk"}):
        if sa.get(key) != sb.get(key):
            groups.append(_Group("snapshot", key, _field_changes(sa.get(key), sb.get(key)),
                                 _setter(("snapshot", key), sb.get(key))))
    pa, pb = ia["policy"], ib["policy"]
    for key in sorted({*pa, *pb} - {"constraints"}):
        if pa.get(key) != pb.get(key):
            groups.append(_Group("policy", key, _field_changes(pa.get(key), pb.get(key)),
                                 _setter(("policy", key), pb.get(key))))
    ca = {_label(c): c for c in pa.get("constraints", [])}
    cb = {_label(c): c for c in pb.get("constraints", [])}
    for label in [*ca, *(k for k in cb if k not in ca)]:
        if ca.get(label) != cb.get(label):
            groups.append(_Group("policy", f"constraint '{label}'", _field_changes(ca.get(label), cb.get(label)),
                                 _constraint_setter(label, cb.get(label))))
    ha, hb = ia["holdings"], ib["holdings"]
    if ha != hb:
        groups.append(_Group("holdings", "holdings", _field_changes(ha, hb), _setter(("holdings",), hb)))
    return sorted(groups, key=lambda g: -len(g.changes))


def _attribute(ra: DecisionRecord, groups: list[_Group], base: Any, ids: list[str]) -> list[dict[str, Any]]:
    import copy

    from bondfolio.solver.api import allocate

    out: list[dict[str, Any]] = []
    base_apy = float(ra.data["metrics"]["expected_apy"])
    for g in groups:
        inputs = copy.deepcopy(ra.data["inputs"])
        try:
            g.apply(inputs)
            d = allocate(inputs["snapshot"], inputs["policy"], inputs["holdings"])
        except BondfolioError as exc:
            out.append({"group": f"{g.input}: {g.item}", "error": f"{type(exc).__name__}: {exc}"})
            continue
        w = d.weights.reindex(ids, fill_value=0.0)
        out.append({"group": f"{g.input}: {g.item}", "moved": float(np.abs(w.to_numpy() - base.to_numpy()).sum()),
                    "expected_apy_change": float(d.metrics["expected_apy"]) - base_apy})
    return sorted(out, key=lambda g: -g.get("moved", -1.0))


def _setter(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        target: Any = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _constraint_setter(label: str, spec: dict[str, Any] | None) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        cons = d["policy"].setdefault("constraints", [])
        kept = [c for c in cons if _label(c) != label]
        if spec is not None:
            at = next((i for i, c in enumerate(cons) if _label(c) == label), len(kept))
            kept.insert(at, spec)
        d["policy"]["constraints"] = kept

    return apply


def _label(spec: Mapping[str, Any]) -> str:
    return str(spec.get("name") or spec.get("kind"))


def _field_changes(a: Any, b: Any, prefix: str = "") -> dict[str, list[Any]]:
    """Leaf changes between two JSON values, by dotted path (lists of numbers summarized)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, list[Any]] = {}
        for key in [*a, *(k for k in b if k not in a)]:
            out.update(_field_changes(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key)))
        return out
    if a == b:
        return {}
    if isinstance(a, list) and isinstance(b, list) and len(a) > 8:
        fa, fb = np.asarray(a, dtype=object).ravel(), np.asarray(b, dtype=object).ravel()
        count = int(np.sum(fa != fb)) if fa.shape == fb.shape else max(len(a), len(b))
        return {prefix or "value": [f"{len(a)} items", f"{count} of {len(b)} items changed"]}
    return {prefix or "value": [a, b]}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def _row_name(x: Any, i: int) -> str:
    if isinstance(x, dict):
        for key in ("id", "name"):
            if isinstance(x.get(key), str):
                return str(x[key])
        if isinstance(x.get("constraint"), str) and isinstance(x.get("row"), str):
            return f"{x['constraint']}:{x['row']}"
    return str(i)


def _short(x: Any) -> str:
    text = canonical_json(x) if isinstance(x, dict | list) else (f"{x:.6g}" if _is_number(x) else str(x))
    return text if len(text) <= 60 else text[:57] + "..."
