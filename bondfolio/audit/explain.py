"""``explain``: why a decision is what it is, in plain language and numbers.

Three parts, all computed from the record's own inputs and weights:

The yields are the exact curves' marginal APY; the edge uses the program's model of each rate curve
(a concave piecewise-linear hull, whose one-sided slopes differ at a knot: the edge is 0 when the
shared price lies between them).

1. **Binding constraints and what relaxing each is worth.** The first-order value comes from the
   dual: ``dual x step`` (a step is 1 percentage point of NAV, 0.1 year of duration; see
   :data:`~bondfolio.solver.diagnose.STEPS`), in bp of the objective (risk-adjusted yield). With
   ``exact=True`` each of the largest binding rows is also relaxed by one step and re-solved on the
   same compiled program, giving the exact change of the objective and of the expected APY.
2. **Each position's marginal yield against its costs**, per unit of weight (APY decimals):
   ``yield`` (the APY of the next unit deposited, on the exact rate curve where modelled),
   ``failure`` (``failure_aversion x`` expected failure loss), ``risk`` (``risk_aversion x (Sigma
   w)_i``), ``carry`` (hedges), and ``net``. ``vs_nav`` is ``net`` minus the budget's dual (the value
   of one more unit of NAV): about 0 for positions between their bounds, positive for positions a
   cap holds down, negative for positions not held.
3. **Risk contributions** (Euler): volatility ``w_i (Sigma w)_i / sigma``, CVaR ``w_i E[L_i | tail]``
   for each ``cvar`` constraint, and expected failure loss ``w_i el_i``, per position and per protocol;
   each sums to the portfolio figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bondfolio.constraints.cvar import CVaR
from bondfolio.constraints.variables import Point
from bondfolio.errors import BondfolioError
from bondfolio.inputs.scenarios import tail_weights
from bondfolio.inputs.universe import Universe
from bondfolio.solver.decision import Decision
from bondfolio.solver.diagnose import format_bound, step_of
from bondfolio.solver.program import OBJECTIVE_SCALE, Program, Solution
from bondfolio.solver.record import DecisionRecord, load_decision

__all__ = ["Explanation", "explain", "risk_contributions"]

#: Binding rows re-solved exactly (largest duals first); the rest get the dual estimate only.
MAX_EXACT = 12


@dataclass
class Explanation:
    """The explanation of one decision (see the module docstring)."""

    policy: str
    objective: float
    expected_apy: float
    binding: list[dict[str, Any]]
    positions: list[dict[str, Any]]
    risk: dict[str, Any]
    nav_value: float | None
    """The budget's dual: objective gained per unit of NAV (APY decimal)."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "objective": self.objective, "expected_apy": self.expected_apy,
                "marginal_nav_value": self.nav_value, "binding": self.binding, "positions": self.positions,
                "risk": self.risk, "notes": self.notes}

    def text(self, limit: int = 25) -> str:
        lines = [f"policy '{self.policy}': expected APY {self.expected_apy:.3%}, objective (risk-adjusted yield) "
                 f"{self.objective * 1e4:.2f} bp", ""]
        lines.append("binding constraints, and what relaxing each by one step is worth:")
        if not self.binding:
            lines.append("  none: every constraint has slack; the objective alone sets the allocation")
        for b in self.binding[:limit]:
            lines.append(f"  - {b['sentence']}")
        if len(self.binding) > limit:
            lines.append(f"  ... and {len(self.binding) - limit} more (--format json)")
        held = [p for p in self.positions if abs(p["weight"]) > 5e-5]
        lines += ["", "positions: marginal yield against its costs, bp per unit of weight (net = yield - failure - "
                  "risk - carry;",
                  "  shared = what the shared constraints charge it; edge = net - shared, the worth of its own bound: "
                  "> 0 a cap holds it down, < 0 short of entering, about its trading cost between bounds)",
                  f"  {'id':<32} {'weight':>7} {'yield':>7} {'failure':>7} {'risk':>6} {'carry':>6} {'net':>7} "
                  f"{'shared':>7} {'edge':>7}  status; largest charges"]
        for p in held[:limit]:
            drivers = ", ".join(f"{d['constraint']} {d['price'] * 1e4:+.0f}" for d in p["drivers"])
            lines.append(f"  {p['id'][:32]:<32} {p['weight']:>7.2%} {p['yield'] * 1e4:>7.1f} "
                         f"{p['failure'] * 1e4:>7.1f} {p['risk'] * 1e4:>6.1f} {p['carry'] * 1e4:>6.1f} "
                         f"{p['net'] * 1e4:>7.1f} "
                         f"{_bp(p['shared']):>7} {_bp(p['edge']):>7}  {p['status']}; {drivers}")
        skipped = [p for p in self.positions if abs(p["weight"]) <= 5e-5]
        if skipped:
            best = sorted(skipped, key=lambda p: -(p["edge"] if p["edge"] is not None else -math.inf))[:5]
            lines.append(f"  not held: {len(skipped)}; closest to entering (edge, bp): " + ", ".join(
                f"{p['id']} {_bp(p['edge'])}" for p in best))
        r = self.risk
        lines += ["", f"risk contributions (Euler; they sum to the portfolio figure): volatility {r['volatility']:.3%}"
                  + "".join(f", CVaR {c['alpha']:g} {c['value']:.3%}" for c in r["cvar"])
                  + f", expected failure loss {r['failure_loss']:.3%}"]
        heads = ["volatility"] + [f"CVaR {c['alpha']:g}" for c in r["cvar"]] + ["failure"]
        lines.append(f"  {'protocol':<20} " + " ".join(f"{h:>11}" for h in heads))
        for name, row in r["by_protocol"].items():
            lines.append(f"  {name[:20]:<20} " + " ".join(f"{v:>11.3%}" for v in row.values()))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def explain(decision: DecisionRecord | Decision | str | Path | Mapping[str, Any], snapshot: Any = None,
            policy: Any = None, holdings: Any = None, exact: bool = True, max_exact: int = MAX_EXACT) -> Explanation:
    """Explain a decision record (verified on load) from its own inputs; see the module docstring.

    ``exact`` re-solves the ``max_exact`` binding rows with the largest duals, each relaxed by one
    step, on one compiled program (parameters updated, no recompilation).
    """
    record = decision.record if isinstance(decision, Decision) else load_decision(decision)
    snap, pol, hold = record.inputs_for(snapshot, policy, holdings)
    u = Universe.build(snap, hold, pol.nav)
    program = Program(u, pol)
    w = record.weight_vector(u.ids)
    metrics = record.metrics
    point = Point(w, record.cash_weight, metrics.margin_posted)
    notes: list[str] = []
    rows = [r.model_dump() for r in record.constraints]
    nav_value = next((r.dual for r in record.constraints if r.kind == "budget" and r.row == "invested"), None)
    base: Solution | None = None
    if exact:
        try:
            base = program.solve(reuse=True)
        except BondfolioError as exc:
            notes.append(f"exact relaxation values unavailable: the re-solve failed ({exc})")
    # multipliers of the re-solved decision, read before any relaxed re-solve overwrites them
    multipliers = {} if base is None else {key: np.asarray(con.dual_value, dtype=float).reshape(-1).copy()
                                           for key, con in program.vars.named.items() if con.dual_value is not None}
    if base is not None:  # rows kept out of the compiled program (aggregated cvar scenarios)
        multipliers.update(base.multipliers)
    binding = _binding(record, program, snap, pol, hold, base, max_exact, notes)
    positions = _positions(program, point, rows, notes, multipliers)
    risk = risk_contributions(program, point)
    return Explanation(pol.name, metrics.objective, metrics.expected_apy, binding, positions,
                       risk, nav_value, notes)


def _binding(record: DecisionRecord, program: Program, snap: Any, pol: Any, hold: Any, base: Solution | None,
             max_exact: int, notes: list[str]) -> list[dict[str, Any]]:
    builtin = {c.label for c in program.constraints if not c.relaxable}
    rows = [r.model_dump() for r in record.constraints if r.binding and r.constraint not in builtin]
    at_zero = sum(1 for r in record.constraints if r.binding and r.kind == "long_only")
    if at_zero:
        notes.append(f"{at_zero} positions sit at zero (long-only); see 'not held'")
    where = {}
    for k, comp in enumerate(program.compiled):
        for j, label in enumerate(comp.rows.labels):
            where[(comp.constraint.label, label)] = (k, j)
    out = []
    for r in rows:
        dual = r["dual"]
        step = step_of(r["unit"])
        if r["upper"] is not None and r["lower"] is not None and r["upper"] == r["lower"]:
            side = "upper" if (dual or 0.0) >= 0 else "lower"
        elif r["upper"] is not None and (r["lower"] is None
                                         or abs(r["value"] - r["upper"]) <= abs(r["value"] - r["lower"])):
            side = "upper"
        else:
            side = "lower"
        bound = r[side]
        to = round(bound + step if side == "upper" else bound - step, 12)
        estimate = None if dual is None else abs(dual) * step * 1e4
        out.append({"constraint": r["constraint"], "kind": r["kind"], "row": r["row"], "unit": r["unit"],
                    "side": side, "bound": bound, "to": to, "step": step, "dual": dual,
                    "estimate_bp": estimate, "exact_bp": None, "expected_apy_change_bp": None,
                    "position": where.get((r["constraint"], r["row"]))})
    out.sort(key=lambda b: -(b["estimate_bp"] or 0.0))
    if base is not None and out:
        _exact_values(program, snap, pol, hold, base, out[:max_exact])
    for b in out:
        b.pop("position", None)
        b["sentence"] = _sentence(b)
    return out


def _exact_values(program: Program, snap: Any, pol: Any, hold: Any, base: Solution, rows: list[dict[str, Any]]
                  ) -> None:
    """Relax each row by one step on one compiled program and re-solve (DPP: parameters only)."""
    base_decision = Decision(snap, pol, hold, program, base)
    base_obj = program.exact_objective(base.point)
    base_apy = base_decision.metrics["expected_apy"]
    curve_ids = set() if program.impact is None else {program.universe.ids[i] for i in program.impact.idx}
    for b in rows:
        if b["position"] is None:
            continue
        k, j = b["position"]
        if program.compiled[k].dual_source is not None and b["row"] in curve_ids and b["side"] == "upper":
            b["exact_note"] = "not re-solved: the rate curve is modelled up to the current cap only"
            continue
        lo, hi = program.compiled[k].rows.lower[j], program.compiled[k].rows.upper[j]
        new = (b["to"], hi) if b["side"] == "lower" else (lo, b["to"])
        old = program.set_row_bound(k, j, *new)
        try:
            sol = program.solve(reuse=True)
            b["exact_bp"] = (program.exact_objective(sol.point) - base_obj) * 1e4
            b["expected_apy_change_bp"] = (Decision(snap, pol, hold, program, sol).metrics["expected_apy"]
                                           - base_apy) * 1e4
        except BondfolioError as exc:
            b["exact_note"] = f"re-solve failed: {exc}"
        finally:
            program.set_row_bound(k, j, *old)


def _sentence(b: dict[str, Any]) -> str:
    verb = "raising" if b["side"] == "upper" else "lowering"
    what = b["constraint"] if b["row"] in ("portfolio", "budget") else f"{b['constraint']} on {b['row']}"
    head = (f"{verb} {what} from {format_bound(b['bound'], b['unit'])} to {format_bound(b['to'], b['unit'])}")
    if b["exact_bp"] is not None:
        tail = (f" adds {b['exact_bp']:.2f} bp of risk-adjusted yield (re-solved; dual estimate "
                f"{b['estimate_bp']:.2f} bp), expected APY {b['expected_apy_change_bp']:+.2f} bp")
    elif b["estimate_bp"] is not None:
        tail = f" adds about {b['estimate_bp']:.2f} bp of risk-adjusted yield (dual estimate)"
    else:
        tail = ": no dual value reported by the solver"
    return head + tail + (f" [{b['exact_note']}]" if b.get("exact_note") else "")


def _positions(program: Program, x: Point, rows: list[dict[str, Any]], notes: list[str],
               multipliers: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    u, obj = program.universe, program.policy.objective
    w = x.w
    marginal_yield = np.array(u.apy, dtype=float)
    # the program's model of income (the concave hull of each rate curve) has one-sided slopes at a knot
    left, right = marginal_yield.copy(), marginal_yield.copy()
    impact = program.impact
    if impact is not None and impact.idx.size:
        h = 1e-7
        up, down = w.copy(), w.copy()
        up[impact.idx] += h
        down[impact.idx] = np.maximum(down[impact.idx] - h, 0.0)
        width_down = np.maximum(w[impact.idx] - down[impact.idx], 1e-300)
        marginal_yield[impact.idx] = (impact.exact_income(up) - impact.exact_income(w)) / h
        model = impact.model_income(w)
        right[impact.idx] = (impact.model_income(up) - model) / h
        left[impact.idx] = np.where(w[impact.idx] > h, (model - impact.model_income(down)) / width_down,
                                    right[impact.idx])
    failure = obj.failure_aversion * np.asarray(u.expected_loss_rate)
    risk = obj.risk_aversion * u.marginal_risk(w) if program.has_risk else np.zeros(u.n)
    carry = u.numeric("carry") * np.sign(w)
    net = marginal_yield - failure - risk - carry
    costs = left - marginal_yield, right - marginal_yield  # zero off the rate curves
    prices = _constraint_prices(program, x, rows, notes, multipliers)
    own_bounds = {c.label for c in program.constraints if c.own_bound}
    out = []
    for i, oid in enumerate(u.ids):
        own = [r["constraint"] for r in rows if r["binding"] and r["row"] == oid and r["constraint"] in own_bounds]
        if abs(w[i]) <= 5e-9:
            status = "not held"
        elif own:
            status = "at " + ", ".join(own)
        else:
            status = "between its bounds"
        entry: dict[str, Any] = {"id": oid, "protocol": u.snapshot.opportunities[i].protocol, "weight": float(w[i]),
                                 "yield": float(marginal_yield[i]), "failure": float(failure[i]),
                                 "risk": float(risk[i]), "carry": float(carry[i]), "net": float(net[i]),
                                 "shared": None, "edge": None, "drivers": [], "status": status}
        if prices is not None:
            shared = prices[i]
            entry["shared"] = float(sum(shared.values()))
            # edge: the distance from the shared price to the model's marginal range [right, left]
            lo, hi = net[i] + costs[1][i] - entry["shared"], net[i] + costs[0][i] - entry["shared"]
            entry["edge"] = float(lo if lo > 0 else hi if hi < 0 else 0.0)
            entry["drivers"] = [{"constraint": k, "price": float(v)}
                                for k, v in sorted(shared.items(), key=lambda kv: -abs(kv[1]))[:3] if abs(v) > 1e-7]
        out.append(entry)
    return sorted(out, key=lambda p: -abs(p["weight"]))


#: Largest universe for which constraint prices are computed (finite differences: 2 n evaluations of
#: every shared family).
MAX_PRICED = 400


def _constraint_prices(program: Program, x: Point, rows: list[dict[str, Any]], notes: list[str],
                       multipliers: dict[str, np.ndarray]) -> list[dict[str, float]] | None:
    """Per position ``i`` and shared constraint family: ``sum_r dual_r df_r/dw_i`` (APY per unit of
    weight). At the optimum the marginal objective ``net_i`` equals the sum of these prices plus the
    duals of the position's own bounds (and a trading-cost subgradient), so ``net - shared`` is what
    the position's own bound is worth. Derivatives by central differences (h = 1e-6) of each family's
    numpy evaluation (the right derivative for deposits at zero), except where the program was just
    re-solved and the family exposes its multipliers (CVaR)."""
    u = program.universe
    if u.n > MAX_PRICED:
        notes.append(f"constraint prices per position are computed up to {MAX_PRICED} opportunities (this has {u.n})")
        return None
    if len(rows) != sum(len(c.rows.labels) for c in program.compiled):
        notes.append("constraint prices unavailable: the record's constraint rows do not match the program")
        return None
    prices: list[dict[str, float]] = [{} for _ in range(u.n)]
    k = 0
    h = 1e-6
    for comp in program.compiled:
        m = len(comp.rows.labels)
        duals = np.array([r["dual"] if r["dual"] is not None else 0.0 for r in rows[k:k + m]])
        k += m
        if comp.constraint.own_bound or not np.any(duals):
            continue
        label = comp.constraint.label
        tail = multipliers.get(f"{label}:tail")
        if tail is not None:
            # CVaR is piecewise linear: its price is the solver's own multipliers on the tail rows
            # (excess_s >= L_s w - t), sum_s pi_s L_s, not a finite difference across a kink
            pi = tail / OBJECTIVE_SCALE
            for i, value in enumerate(pi @ comp.rows.coefficients["losses"]):
                if value:
                    prices[i][label] = float(value)
            continue
        if isinstance(comp.constraint, CVaR):
            notes.append(f"{label}: its price per position is a finite difference across a piecewise-linear "
                         "function (explain with exact=True uses the solver's multipliers instead)")
        base = np.asarray(comp.constraint.evaluate(comp.rows, x, u))
        for i in range(u.n):
            up, down = x.w.copy(), x.w.copy()
            up[i] += h
            fu = np.asarray(comp.constraint.evaluate(comp.rows, Point(up, x.cash, x.margin), u))
            if abs(x.w[i]) <= 1e-8 and not u.hedge[i]:  # entering a deposit: the right derivative
                slope = (fu - base) / h
            else:
                down[i] -= h
                fd = np.asarray(comp.constraint.evaluate(comp.rows, Point(down, x.cash, x.margin), u))
                slope = (fu - fd) / (2 * h)
            value = float(duals @ slope)
            if value:
                prices[i][label] = value
    return prices


def risk_contributions(program: Program, x: Point) -> dict[str, Any]:
    """Euler contributions of each position and protocol to volatility, CVaR (per ``cvar``
    constraint) and expected failure loss; each column sums to the portfolio figure."""
    u = program.universe
    w = x.w
    sigma_w = u.marginal_risk(w)
    vol = math.sqrt(max(float(w @ sigma_w), 0.0))
    vol_c = w * sigma_w / vol if vol > 0 else np.zeros(u.n)
    fail_c = w * np.asarray(u.expected_loss_rate)
    cvars: list[dict[str, Any]] = []
    for comp in program.compiled:
        if isinstance(comp.constraint, CVaR):
            losses = comp.rows.coefficients["losses"]
            prob = comp.rows.coefficients["probability"]
            contrib, value = _cvar_contributions(losses, prob, comp.constraint.alpha, w)
            cvars.append({"constraint": comp.constraint.label, "alpha": comp.constraint.alpha, "value": value,
                          "contributions": contrib})
    protocols = [o.protocol for o in u.snapshot.opportunities]
    by_protocol: dict[str, dict[str, float]] = {}
    for name in sorted(set(protocols)):
        mask = np.array([p == name for p in protocols])
        if not np.any(np.abs(w[mask]) > 0):
            continue
        row = {"volatility": float(vol_c[mask].sum())}
        for c in cvars:
            row[f"cvar_{c['alpha']:g}"] = float(c["contributions"][mask].sum())
        row["failure"] = float(fail_c[mask].sum())
        by_protocol[name] = row
    by_protocol = dict(sorted(by_protocol.items(), key=lambda kv: -abs(kv[1]["volatility"])))
    positions = []
    for i in np.flatnonzero(np.abs(w) > 0):
        positions.append({"id": u.ids[i], "volatility": float(vol_c[i]), "failure": float(fail_c[i]),
                          **{f"cvar_{c['alpha']:g}": float(c["contributions"][i]) for c in cvars}})
    return {"volatility": vol, "failure_loss": float(fail_c.sum()),
            "cvar": [{"constraint": c["constraint"], "alpha": c["alpha"], "value": c["value"]} for c in cvars],
            "by_protocol": by_protocol, "by_position": sorted(positions, key=lambda p: -abs(p["volatility"]))}


def _cvar_contributions(losses: np.ndarray, prob: np.ndarray, alpha: float, w: np.ndarray
                        ) -> tuple[np.ndarray, float]:
    """``w_i E[L_i | tail]`` with the tail as in :func:`~bondfolio.inputs.scenarios.cvar` (the boundary
    scenario counted fractionally); the contributions sum to the CVaR."""
    portfolio = losses @ w
    q = tail_weights(portfolio, prob, alpha)
    contributions = w * (q @ losses)
    return contributions, float(q @ portfolio)


def _bp(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e4:+.1f}"
