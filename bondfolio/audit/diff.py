"""``diff``: what changed between two decisions, and which input changes moved the answer most."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bondfolio.audit._values import field_changes, is_number, short
from bondfolio.errors import BondfolioError
from bondfolio.solver.record import DecisionRecord, load_decision

__all__ = ["DiffReport", "diff"]


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
            changes = ", ".join(f"{k} {short(o)} -> {short(n)}" for k, (o, n) in list(item["changes"].items())[:6])
            lines.append(f"  {item['input']} {item['item']}: {changes}")
        if len(self.inputs) > limit:
            lines.append(f"  ... and {len(self.inputs) - limit} more")
        lines += ["", f"allocation: {len(self.allocation)} positions changed, sum |dw| = {self.moved_total:.4%} of NAV"]
        for a in self.allocation[:limit]:
            lines.append(f"  {a['id'][:40]:<40} {a['old_weight']:>8.3%} -> {a['new_weight']:>8.3%}  "
                         f"({a['new_weight'] - a['old_weight']:+.3%})")
        if self.metrics:
            lines += ["", "metrics:"]
            lines += [f"  {k}: {short(o)} -> {short(n)}" for k, (o, n) in self.metrics.items()]
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
    ma, mb = ra.metrics.model_dump(), rb.metrics.model_dump()
    metrics = {k: [v, mb[k]] for k, v in ma.items()
               if is_number(v) and is_number(mb[k]) and abs(float(v) - float(mb[k])) > 1e-12}
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
    if ra.inputs is None or rb.inputs is None:
        pa, pb = ra.provenance, rb.provenance
        return [_Group("inputs", key, {"sha256": [getattr(pa, f"{key}_sha256"), getattr(pb, f"{key}_sha256")]},
                       lambda d: None)
                for key in ("snapshot", "policy", "holdings")
                if getattr(pa, f"{key}_sha256") != getattr(pb, f"{key}_sha256")]
    ia, ib = ra.inputs.model_dump(), rb.inputs.model_dump()
    groups: list[_Group] = []
    sa, sb = ia["snapshot"], ib["snapshot"]
    oa = {o["id"]: o for o in sa["opportunities"]}
    ob = {o["id"]: o for o in sb["opportunities"]}
    if list(oa) == list(ob):
        for k, oid in enumerate(oa):
            if oa[oid] != ob[oid]:
                groups.append(_Group("snapshot", f"opportunity '{oid}'", field_changes(oa[oid], ob[oid]),
                                     _setter(("snapshot", "opportunities", k), ob[oid])))
        if sa["risk"] != sb["risk"]:
            groups.append(_Group("snapshot", "risk model", field_changes(sa["risk"], sb["risk"]),
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
            groups.append(_Group("snapshot", key, field_changes(sa.get(key), sb.get(key)),
                                 _setter(("snapshot", key), sb.get(key))))
    pa, pb = ia["policy"], ib["policy"]
    for key in sorted({*pa, *pb} - {"constraints"}):
        if pa.get(key) != pb.get(key):
            groups.append(_Group("policy", key, field_changes(pa.get(key), pb.get(key)),
                                 _setter(("policy", key), pb.get(key))))
    for old, new in _pair_constraints(ra, rb):
        spec_a = None if old is None else pa["constraints"][old[0]]
        spec_b = None if new is None else pb["constraints"][new[0]]
        if spec_a != spec_b:
            if old is None or new is None:
                name = (old or new or (0, ""))[1]
            else:
                name = old[1] if old[1] == new[1] else f"{old[1]}' -> '{new[1]}"
            groups.append(_Group("policy", f"constraint '{name}'", field_changes(spec_a, spec_b),
                                 _constraint_setter(None if old is None else old[0], spec_b)))
    ha, hb = ia["holdings"], ib["holdings"]
    if ha != hb:
        groups.append(_Group("holdings", "holdings", field_changes(ha, hb), _setter(("holdings",), hb)))
    return sorted(groups, key=lambda g: -len(g.changes))


def _attribute(ra: DecisionRecord, groups: list[_Group], base: Any, ids: list[str]) -> list[dict[str, Any]]:
    from bondfolio.solver.api import allocate

    out: list[dict[str, Any]] = []
    base_apy = ra.metrics.expected_apy
    assert ra.inputs is not None
    for g in groups:
        inputs = ra.inputs.model_dump()
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


def _pair_constraints(ra: DecisionRecord, rb: DecisionRecord
                      ) -> list[tuple[tuple[int, str] | None, tuple[int, str] | None]]:
    """A's and B's policy constraints paired by the label the policy gives them
    (:attr:`~bondfolio.inputs.policy.ConstraintSpec.label`); the ones left unpaired are paired by kind
    in policy order (a constraint whose parameters changed, and so its label), the rest are added or
    removed. Items are ``(index in the policy, label)``."""
    la = [c.label for c in ra.input("policy").constraints]
    lb = [c.label for c in rb.input("policy").constraints]
    kinds_a = [c.kind for c in ra.input("policy").constraints]
    kinds_b = [c.kind for c in rb.input("policy").constraints]
    pairs: list[tuple[tuple[int, str] | None, tuple[int, str] | None]] = []
    left_b = [j for j in range(len(lb)) if lb[j] not in la]
    unpaired_a = []
    for i, label in enumerate(la):
        if label in lb:
            j = lb.index(label)
            pairs.append(((i, label), (j, label)))
        else:
            unpaired_a.append(i)
    for i in unpaired_a:
        match = next((j for j in left_b if kinds_b[j] == kinds_a[i]), None)
        if match is None:
            pairs.append(((i, la[i]), None))
        else:
            left_b.remove(match)
            pairs.append(((i, la[i]), (match, lb[match])))
    pairs += [(None, (j, lb[j])) for j in left_b]
    return pairs


def _constraint_setter(index: int | None, spec: dict[str, Any] | None) -> Callable[[dict[str, Any]], None]:
    """Puts B's version of a constraint in place of A's constraint ``index`` (appended when A has
    none; removed when B has none)."""
    def apply(d: dict[str, Any]) -> None:
        cons = list(d["policy"].get("constraints", []))
        if index is None:
            if spec is not None:
                cons.append(spec)
        elif spec is None:
            del cons[index]
        else:
            cons[index] = spec
        d["policy"]["constraints"] = cons

    return apply


