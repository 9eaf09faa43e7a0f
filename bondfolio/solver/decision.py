"""The Decision: target allocation, trades, metrics, per-constraint audit rows, check and provenance.

Everything reported is recomputed with numpy from the solver's weights, never read back from cvxpy
expressions, except the solver's own objective value and dual values (labelled as such).
"""

from __future__ import annotations

import io
import math
import platform
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio._version import __version__
from bondfolio.constraints.base import Checks
from bondfolio.constraints.cvar import CVaR
from bondfolio.constraints.liquidity_buffer import LiquidityBuffer, withdrawable
from bondfolio.inputs.base import canonical_json, canonical_object, collector_paused, sha256_hex
from bondfolio.inputs.holdings import Holdings
from bondfolio.inputs.policy import Policy
from bondfolio.inputs.snapshot import Snapshot
from bondfolio.inputs.universe import Universe
from bondfolio.solver.mixed import describe
from bondfolio.solver.program import Program, Solution
from bondfolio.solver.record import DECISION_SCHEMA, DecisionRecord, dump_record

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["DECISION_SCHEMA", "DEFAULT_HORIZONS", "TRADE_EPSILON", "Decision", "canonical_inputs", "inputs_digest",
           "versions"]

#: Horizons (days) at which the liquidity buffer is always reported, besides those the policy names.
DEFAULT_HORIZONS: tuple[float, ...] = (0.0, 1.0, 7.0, 30.0)

#: Trades smaller than this fraction of NAV (1e-9, i.e. 0.05 at a NAV of 50 million) are solver
#: round-off and are left out of the trade list (they stay in the allocation).
TRADE_EPSILON = 1e-9


def versions() -> dict[str, str]:
    """Versions of bondfolio and the numerical stack (part of every record)."""
    import clarabel
    import cvxpy
    import scipy

    return {
        "bondfolio": __version__,
        "cvxpy": cvxpy.__version__,
        "clarabel": getattr(clarabel, "__version__", "unknown"),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def canonical_inputs(snapshot: Snapshot, policy: Policy, holdings: Holdings | None) -> dict[str, Any]:
    """The three inputs as canonical JSON data (what a record embeds and what the hashes cover)."""
    with collector_paused():
        return {
            "snapshot": snapshot.model_dump(mode="json", by_alias=True),
            "policy": policy.model_dump(mode="json", by_alias=True),
            "holdings": None if holdings is None else holdings.model_dump(mode="json", by_alias=True),
        }


def inputs_digest(snapshot: Snapshot, policy: Policy, holdings: Holdings | None,
                  parts: dict[str, Any] | None = None) -> dict[str, str | None]:
    """sha256 of each canonical input and of the three together (``inputs_sha256``)."""
    return _digest(canonical_inputs(snapshot, policy, holdings) if parts is None else parts)[0]


def _digest(parts: dict[str, Any]) -> tuple[dict[str, str | None], str]:
    """The input hashes of :func:`canonical_inputs`' ``parts`` and the canonical text of all three, each
    input's text made once: ``inputs_sha256`` is over the object of the three texts."""
    texts = {key: canonical_json(value, finite=True) for key, value in parts.items()}  # JSON-mode dumps
    whole = canonical_object(texts)
    out: dict[str, str | None] = {"inputs_sha256": sha256_hex(whole)}
    for key, value in parts.items():
        out[f"{key}_sha256"] = None if value is None else sha256_hex(texts[key])
    return out, whole


@dataclass
class Decision:
    """The answer to one allocation problem. Build with :func:`bondfolio.allocate`."""

    snapshot: Snapshot
    policy: Policy
    holdings: Holdings | None
    program: Program
    solution: Solution
    embed_inputs: bool = True
    """Embed the canonical inputs in the record (else only their sha256: replays then need the files)."""

    # ------------------------------------------------------------------ core views
    @property
    def universe(self) -> Universe:
        return self.program.universe

    @property
    def weights(self) -> pd.Series:
        """Target weights by opportunity id (fractions of NAV)."""
        return pd.Series(self.solution.point.w, index=pd.Index(self.universe.ids, name="id"), name="weight")

    @property
    def cash(self) -> float:
        """Target idle cash, fraction of NAV."""
        return self.solution.point.cash

    @property
    def check_passed(self) -> bool:
        """Whether the independent numpy check passed (always true for a returned Decision)."""
        return self.solution.max_violation <= self.policy.solver.check_tolerance

    def to_frame(self) -> pd.DataFrame:
        """Per opportunity: attributes, target and current weight and amount, trade (base and tokens)."""
        return pd.DataFrame(self._allocation).set_index("id")

    @cached_property
    def _allocation(self) -> list[dict[str, Any]]:
        u = self.universe
        w, w0, nav = self.solution.point.w, u.w0, u.nav
        impact = {m["id"]: m for m in (self.solution.rate_impact or {}).get("markets", [])}
        rows = []
        for i, o in enumerate(self.snapshot.opportunities):
            amount = float(w[i] * nav)
            current = float(w0[i] * nav)
            rows.append({
                "id": o.id, "protocol": o.protocol, "chain": o.chain, "asset": o.asset, "kind": o.kind.value,
                "tier": o.tier.value, "apy": impact[o.id]["apy_after"] if o.id in impact else o.apy,
                "apy_before": impact[o.id]["apy_before"] if o.id in impact else o.apy,
                "duration": o.duration, "risk_score": o.risk_score,
                "weight": float(w[i]), "amount": amount, "tokens": amount / o.price,
                "current_weight": float(w0[i]), "current_amount": current,
                "trade_amount": amount - current, "trade_tokens": (amount - current) / o.price,
            })
        return rows

    @cached_property
    def _apy_after(self) -> np.ndarray:
        """APY per opportunity after the trade: the snapshot's, or the exact curve's for rate-impact markets
        (as in :meth:`to_frame`)."""
        apy = np.array(self.universe.apy, dtype=float)
        markets = (self.solution.rate_impact or {}).get("markets", [])
        if markets:
            index = {o.id: i for i, o in enumerate(self.snapshot.opportunities)}
            for m in markets:
                apy[index[m["id"]]] = m["apy_after"]
        return apy

    @property
    def flow(self) -> dict[str, Any] | None:
        """The external cash flow when the policy's NAV is not what the holdings are worth (beyond the
        check's tolerance of NAV): a deposit or a redemption the trades assume."""
        u = self.universe
        worth = u.holdings_nav
        if worth is None or self.policy.nav is None:
            return None
        amount = u.nav - worth
        if abs(amount) <= self.policy.solver.check_tolerance * u.nav:
            return None
        return {"kind": "deposit" if amount > 0 else "redemption", "amount": amount, "holdings_worth": worth,
                "nav": u.nav}

    # ------------------------------------------------------------------ metrics
    @cached_property
    def metrics(self) -> dict[str, Any]:
        """Portfolio numbers recomputed with numpy from the weights."""
        u, x, obj = self.universe, self.solution.point, self.policy.objective
        w = x.w
        variance = u.variance(w)
        dw = w - u.w0
        apy = self._apy_after  # after our trade, on the exact curves
        expected = float(apy @ w + obj.cash_apy * x.cash)
        costs = {t.name: t.amount(x) if t.active else 0.0 for t in self.program.terms if t.sign < 0}
        objective = expected  # the incomes are the expected APY; then every cost term, in order
        for term in self.program.terms:
            if term.sign < 0 and term.active:
                objective -= term.value(x)
        penalties = self.program.penalties(x)
        failure_loss = float(u.expected_loss_rate @ w)
        horizons = sorted({*DEFAULT_HORIZONS, *(c.horizon_days for c in self.program.constraints
                                                if isinstance(c, LiquidityBuffer))})
        buffers = {}
        for h in horizons:
            rows = LiquidityBuffer(horizon_days=h, min=0.0).resolve(u)
            buffers[f"{h:g}d"] = withdrawable(x, rows.structure["capped"], rows.structure["free"],
                                              rows.coefficients["available"])
        return {
            "nav": u.nav,
            "expected_apy": expected,
            "volatility": math.sqrt(max(variance, 0.0)),
            "duration": float(u.numeric("duration") @ w),
            "risk_score": float(u.numeric("risk_score") @ np.abs(w)),
            "cash_weight": x.cash,
            "invested_weight": float(np.sum(w[~u.hedge])),
            "hedge_notional": float(np.sum(np.abs(w[u.hedge]))),
            "hedge_carry": costs["carry"],
            "margin_posted": x.margin,
            "margin_required": float(u.numeric("margin") @ np.abs(w)),
            "expected_failure_loss": failure_loss,
            "penalties": penalties,
            "liquidity_buffer": buffers,
            "turnover": float(np.sum(np.abs(dw))),
            "trading_cost": costs["trading_cost"],
            **({"fixed_cost": costs["fixed_cost"]} if "fixed_cost" in costs else {}),
            "slippage_cost": costs.get("slippage", 0.0),
            "objective": objective,
            "solver_objective": self.solution.objective,
        }

    # ------------------------------------------------------------------ constraints and check
    @cached_property
    def constraint_rows(self) -> list[dict[str, Any]]:
        """One record per constraint row: value, bounds, slack, binding flag and dual value.

        ``dual`` is d(objective)/d(bound) in objective units (APY decimal) per unit of the bound:
        positive on a binding cap means raising the cap raises the objective.
        """
        tol = self.policy.solver.binding_tolerance
        out = []
        k = 0
        for comp, duals in zip(self.program.compiled, self.solution.duals, strict=True):
            for r in range(len(comp.rows.labels)):
                res = self.solution.checks[k]
                k += 1
                dual = float(duals[r])
                out.append({
                    "constraint": res.constraint, "kind": res.kind, "row": res.row, "unit": res.unit,
                    "value": res.value, "lower": _finite(res.lower), "upper": _finite(res.upper),
                    "slack": _finite(res.slack), "binding": bool(res.slack <= tol),
                    "dual": None if math.isnan(dual) else dual,
                })
        return out

    @property
    def binding(self) -> list[dict[str, Any]]:
        """Constraint rows at their bound."""
        return [r for r in self.constraint_rows if r["binding"]]

    @cached_property
    def check(self) -> dict[str, Any]:
        """The independent numpy check: every row of every constraint against its bounds."""
        tol = self.policy.solver.check_tolerance
        checks = self.solution.checks
        if isinstance(checks, Checks):  # from the arrays, without a per-row object for every row
            worst, violated = checks.worst(), checks.violations(tol)
        else:
            worst = max(checks, key=lambda r: r.violation) if checks else None
            violated = [r for r in checks if r.violation > tol]
        return {
            "passed": self.check_passed,
            "tolerance": tol,
            "rows_checked": len(checks),
            "max_violation": self.solution.max_violation,
            "worst": None if worst is None else {"constraint": worst.constraint, "row": worst.row,
                                                 "violation": worst.violation},
            "violations": [{"constraint": r.constraint, "row": r.row, "violation": r.violation} for r in violated],
        }

    @property
    def cvar_methods(self) -> list[dict[str, Any]]:
        """How each ``cvar`` constraint's scenarios were solved: ``full`` in the compiled program, or
        ``aggregated`` with the loop's counts (:mod:`bondfolio.solver.cvar_cuts`)."""
        reports = {r["constraint"]: r for r in self.solution.scenarios}
        out = []
        for comp in self.program.compiled:
            if isinstance(comp.constraint, CVaR):
                label = comp.constraint.label
                out.append(reports.get(label) or {"constraint": label, "method": "full",
                                                  "scenarios": len(comp.rows.structure["scenarios"])})
        return out

    # ------------------------------------------------------------------ output
    @cached_property
    def record(self) -> DecisionRecord:
        """The decision's sealed record (see :mod:`bondfolio.solver.record`).

        ``timing`` holds the only run-dependent numbers (wall-clock seconds); everything else is a
        function of the inputs and the software versions, sealed by ``record_sha256``. The canonical
        inputs come last, under ``inputs`` (unless ``embed_inputs`` is false).
        """
        sol = self.solution
        trades = [
            {"id": a["id"], "side": "buy" if a["trade_amount"] > 0 else "sell", "amount": a["trade_amount"],
             "tokens": a["trade_tokens"]}
            for a in self._allocation if abs(a["trade_amount"]) > TRADE_EPSILON * self.universe.nav
        ]
        inputs = canonical_inputs(self.snapshot, self.policy, self.holdings)
        digest, inputs_text = _digest(inputs)
        body: dict[str, Any] = {
            "schema": DECISION_SCHEMA,
            "policy": self.policy.name,
            "as_of": self.snapshot.as_of.timestamp.isoformat(),
            "base_currency": self.snapshot.base_currency,
            "allocation": self._allocation,
            "cash": {"weight": self.cash, "amount": self.cash * self.universe.nav,
                     "current_weight": self.universe.cash0, "current_amount": self.universe.cash0 * self.universe.nav},
            "trades": trades,
            "metrics": self.metrics,
            "constraints": self.constraint_rows,
            "check": self.check,
            "solver": {
                "name": sol.solver, "status": sol.status, "inaccurate": sol.inaccurate,
                "order": list(sol.order), "order_from": sol.order_from,
                **({"cvar": self.cvar_methods} if self.cvar_methods else {}),
                "attempts": [{k: v for k, v in a.to_dict().items() if k != "seconds"} for a in sol.attempts],
                "options": sol.options,
            },
            **({"rate_impact": sol.rate_impact} if sol.rate_impact is not None else {}),
            **({"trade_choice": sol.mixed} if sol.mixed is not None else {}),
            **({"flow": self.flow} if self.flow is not None else {}),
            "provenance": {
                **digest,
                "versions": versions(),
                "effective_policy": {
                    **self.policy.model_dump(mode="json", by_alias=True, exclude={"constraints"}),
                    "constraints": [c.model_dump(mode="json") for c in self.program.constraints],
                },
            },
            "timing": {
                "build_seconds": sol.compile_seconds,
                "solve_seconds": sol.solve_seconds,
                "solver_seconds": sol.solver_seconds,
                "attempt_seconds": [a.seconds for a in sol.attempts],
            },
            **({"inputs": inputs} if self.embed_inputs else {}),
        }
        with collector_paused():
            record = DecisionRecord.model_validate(body)
        return record.sealed(inputs_text if self.embed_inputs else None)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, keys in a fixed order (:meth:`DecisionRecord.to_dict`)."""
        return self.record.to_dict()

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict` (stable key order, finite numbers only, trailing newline)."""
        return dump_record(self.to_dict(), indent)

    def to_csv(self) -> str:
        """The allocation table as CSV (one row per opportunity, plus a ``cash`` row)."""
        frame = self.to_frame()
        cash = pd.DataFrame([{"id": "cash", "weight": self.cash, "amount": self.cash * self.universe.nav,
                              "current_weight": self.universe.cash0,
                              "current_amount": self.universe.cash0 * self.universe.nav}]).set_index("id")
        buf = io.StringIO()
        pd.concat([frame, cash]).to_csv(buf, float_format="%.10g", lineterminator="\n")
        return buf.getvalue()

    def table(self, min_weight: float = 5e-5) -> str:
        """A readable text report: positions, metrics, binding constraints and the check."""
        m = self.metrics
        ccy = self.snapshot.base_currency
        tol = self.policy.solver.check_tolerance
        lines = [f"policy '{self.policy.name}'  as of {self.snapshot.as_of.timestamp.isoformat()}  "
                 f"NAV {m['nav']:,.0f} {ccy}", ""]
        flow = self.flow
        if flow is not None:
            lines[-1:] = [f"cash flow: a {flow['kind']} of {abs(flow['amount']):,.0f} {ccy} (the policy's nav "
                          f"{flow['nav']:,.0f} against holdings worth {flow['holdings_worth']:,.0f}): the trades "
                          "below assume it has happened", ""]
        head = f"{'id':<34} {'protocol':<13} {'weight':>8} {'amount':>15} {'apy':>7} {'dur':>5} {'trade':>15}"
        lines += [head, "-" * len(head)]
        for a in sorted(self._allocation, key=lambda a: -abs(a["weight"])):
            if abs(a["weight"]) < min_weight and abs(a["trade_amount"]) < min_weight * m["nav"]:
                continue
            w, amount, trade = (shown(a["weight"], tol), shown(a["amount"], tol * m["nav"]),
                                shown(a["trade_amount"], tol * m["nav"]))
            lines.append(f"{a['id'][:34]:<34} {a['protocol'][:13]:<13} {w:>8.2%} {amount:>15,.0f} "
                         f"{a['apy']:>7.2%} {a['duration']:>5.2f} {trade:>+15,.0f}")
        if self.cash > min_weight or self.universe.cash0 > min_weight:
            trade = shown((self.cash - self.universe.cash0) * m["nav"], tol * m["nav"])
            cash = shown(self.cash, tol)
            lines.append(f"{'cash':<34} {'':<13} {cash:>8.2%} {cash * m['nav']:>15,.0f} "
                         f"{self.policy.objective.cash_apy:>7.2%} {0:>5.2f} {trade:>+15,.0f}")
        buffers = "  ".join(f"{k}: {v:.1%}" for k, v in m["liquidity_buffer"].items())
        lines += [
            "",
            f"expected APY {m['expected_apy']:.3%}   volatility {m['volatility']:.3%}   duration "
            f"{m['duration']:.3f} y   risk score {m['risk_score']:.4f}   turnover {m['turnover']:.2%}",
            f"liquidity buffer  {buffers}",
        ]
        if m["expected_failure_loss"] or m["hedge_notional"]:
            lines.append(f"expected failure loss {m['expected_failure_loss']:.3%}   hedge notional "
                         f"{m['hedge_notional']:.2%}   carry {m['hedge_carry']:.3%}   margin {m['margin_posted']:.2%}")
        lines += [
            "",
            "binding constraints (dual: objective change per unit of bound, in bp):",
        ]
        binding = [r for r in self.binding if r["kind"] != "long_only"]
        at_zero = len(self.binding) - len(binding)
        if at_zero:
            lines.append(f"  long_only: {at_zero} positions at zero")
        if not binding and not at_zero:
            lines.append("  none")
        for r in binding[:40]:
            bound = r["upper"] if r["dual"] is None or r["dual"] >= 0 else r["lower"]
            dual = "n/a" if r["dual"] is None else f"{r['dual'] * 1e4:+.2f} bp"
            lines.append(f"  {r['constraint']}[{r['row']}] = {r['value']:.6g} at bound {bound:.6g}  dual {dual}")
        if len(binding) > 40:
            lines.append(f"  ... and {len(binding) - 40} more (see the JSON output)")
        c = self.check
        flag = " (solver reported an inaccurate solution; the check passed)" if self.solution.inaccurate else ""
        lines += ["", f"check: {'passed' if c['passed'] else 'FAILED'}, {c['rows_checked']} rows, largest violation "
                      f"{c['max_violation']:.2e} (tolerance {c['tolerance']:g}){flag}",
                  f"solver: {self.solution.solver} {self.solution.status}"]
        for r in self.solution.scenarios:
            lines.append(f"cvar: {r['constraint']}: {r['scenarios']:,} scenarios aggregated into {r['groups']} groups "
                         f"({r['master_solves']} master solves)")
        if self.solution.mixed is not None:
            fixed = (m.get("fixed_cost") or 0.0) * m["nav"]
            lines.append(f"trades: {describe(self.solution.mixed)}; fixed costs {fixed:,.2f} {ccy}")
        return "\n".join(lines) + "\n"


def shown(x: float, tol: float) -> float:
    """A number as shown to people: solver round-off below the check's tolerance is 0 (never ``-0.00 %``);
    the record keeps the exact value."""
    return 0.0 if abs(x) <= tol else x


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
