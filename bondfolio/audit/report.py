"""``report``: one self-contained HTML page for a decision record.

The page holds the headline metrics, the allocation (chart and table, target against current), the
efficient frontier with the decision's point (a fresh sweep of the record's own inputs), risk
contributions per protocol (chart and table), the binding constraints with what relaxing each is
worth, the independent check and the provenance (hashes, versions). Charts are matplotlib PNGs
embedded as ``data:`` URIs; there are no scripts, fonts or links to fetch, so the file opens offline
and can be archived with the record it describes.

Every number shown carries a ``data-value`` attribute with the full-precision value from the record
(or the explanation), so tests and auditors can check the page against the record mechanically.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bondfolio.audit.explain import Explanation, explain
from bondfolio.audit.frontier import Frontier, frontier
from bondfolio.solver.record import AllocationRow, DecisionRecord, load_decision

__all__ = ["render_report"]

#: Frontier points drawn in a report (a sweep of the record's inputs).
REPORT_POINTS = 25

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#1a202c;
padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #cbd5e0}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{padding:3px 8px;border-bottom:1px solid #e2e8f0}
th{text-align:left;background:#f7fafc}td.n{text-align:right;font-variant-numeric:tabular-nums}
.kpi{display:inline-block;margin:0 1.5em .8em 0}.kpi b{display:block;font-size:1.4em}.ok{color:#276749}
.bad{color:#c53030}.muted{color:#718096;font-size:.85em}img{max-width:100%}code{font-size:.85em}
"""


def render_report(decision: DecisionRecord | str | Path | Mapping[str, Any], snapshot: Any = None,
                  policy: Any = None, holdings: Any = None, points: int = REPORT_POINTS, exact: bool = True) -> str:
    """The HTML text of the report of a decision record (verified on load)."""
    record = load_decision(decision)
    snap, pol, hold = record.inputs_for(snapshot, policy, holdings)
    ex = explain(record, snap, pol, hold, exact=exact)
    front = frontier(snap, pol, hold, points=points) if points >= 3 else None
    return _html(record, ex, front)


def _html(record: DecisionRecord, ex: Explanation, front: Frontier | None) -> str:
    m = record.metrics
    check = record.check
    nav = m.nav
    ccy = html.escape(record.base_currency)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>bondfolio decision: "
             f"{html.escape(record.policy_name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Decision: policy '{html.escape(record.policy_name)}'</h1>",
             f"<p class='muted'>as of {html.escape(record.as_of)} · "
             f"NAV {_num(nav, format(nav, ',.0f'), 'nav')} {ccy} · "
             f"record sha256 <code id='record-sha256'>{html.escape(record.sha256)}</code></p>"]
    cvar = ex.risk["cvar"]
    kpis = [("expected APY", "expected-apy", m.expected_apy, _pct(m.expected_apy, 3)),
            ("volatility", "volatility", m.volatility, _pct(m.volatility, 3)),
            ("duration", "duration", m.duration, f"{m.duration:.3f} y"),
            ("expected failure loss", "failure-loss", m.expected_failure_loss, _pct(m.expected_failure_loss, 3)),
            ("turnover", "turnover", m.turnover, _pct(m.turnover, 2))]
    kpis += [(f"CVaR {c['alpha']:g}", f"cvar-{c['alpha']:g}", c["value"], _pct(c["value"], 3)) for c in cvar]
    parts.append("<div>" + "".join(f"<span class='kpi'>{label}<b>{_num(v, text, key)}</b></span>"
                                   for label, key, v, text in kpis) + "</div>")
    passed = check.passed
    parts.append(f"<p id='check' data-passed='{str(passed).lower()}' class='{'ok' if passed else 'bad'}'>"
                 f"Independent check: {'passed' if passed else 'FAILED'}: {check.rows_checked} constraint rows, "
                 "largest violation "
                 f"{_num(check.max_violation, format(check.max_violation, '.2e'), 'max-violation')} "
                 f"(tolerance {check.tolerance:g}); solver {html.escape(record.solver.name)} "
                 f"{html.escape(record.solver.status)}</p>")

    # allocation
    held = [a for a in record.allocation if abs(a.weight) > 5e-5 or abs(a.current_weight) > 5e-5]
    held.sort(key=lambda a: -abs(a.weight))
    parts.append("<h2>Allocation</h2>" + _img(_allocation_png(held), "target and current weight by position"))
    rows = "".join(
        f"<tr data-id='{html.escape(a.id)}'><td>{html.escape(a.id)}</td><td>{html.escape(a.protocol)}</td>"
        f"<td class='n'>{_num(a.weight, _pct(a.weight, 2), 'weight')}</td>"
        f"<td class='n'>{_num(a.amount, _amount(a.amount, ',.0f'), 'amount')}</td>"
        f"<td class='n'>{_num(a.current_weight, _pct(a.current_weight, 2), 'current-weight')}</td>"
        f"<td class='n'>{_num(a.trade_amount, _amount(a.trade_amount, '+,.0f'), 'trade')}</td>"
        f"<td class='n'>{_pct(a.apy, 2)}</td><td class='n'>{a.duration:.2f}</td></tr>" for a in held)
    cash = record.cash
    rows += (f"<tr data-id='cash'><td>cash</td><td></td>"
             f"<td class='n'>{_num(cash.weight, _pct(cash.weight, 2), 'weight')}</td>"
             f"<td class='n'>{_amount(cash.amount, ',.0f')}</td><td class='n'>{_pct(cash.current_weight, 2)}</td>"
             f"<td class='n'>{cash.amount - cash.current_amount:+,.0f}</td><td></td><td></td></tr>")
    parts.append(f"<table id='allocation'><tr><th>position</th><th>protocol</th><th>weight</th><th>amount ({ccy})</th>"
                 f"<th>current</th><th>trade ({ccy})</th><th>APY</th><th>duration</th></tr>{rows}</table>")

    # frontier
    if front is not None:
        parts.append("<h2>Efficient frontier</h2>" + _img(_figure_png(front.plot()), "efficient frontier")
                     + f"<p class='muted'>{len(front.frame)} points, risk aversion swept over one compiled program; "
                       f"the marked point is this policy's risk aversion ({front.policy_risk_aversion:g}).</p>")

    # risk
    parts.append("<h2>Risk contributions</h2>" + _img(_risk_png(ex), "risk contributions per protocol"))
    heads = ["volatility", *[f"CVaR {c['alpha']:g}" for c in cvar], "expected failure loss"]
    body = "".join(f"<tr data-protocol='{html.escape(name)}'><td>{html.escape(name)}</td>"
                   + "".join(f"<td class='n'>{_num(v, _pct(v, 3), key)}</td>" for key, v in row.items()) + "</tr>"
                   for name, row in ex.risk["by_protocol"].items())
    parts.append("<table id='risk'><tr><th>protocol</th>" + "".join(f"<th>{h}</th>" for h in heads) + f"</tr>{body}"
                 "</table><p class='muted'>Euler contributions: each column sums to the portfolio figure.</p>")

    # binding constraints
    parts.append("<h2>Binding constraints</h2>")
    if ex.binding:
        items = "".join(f"<li data-constraint='{html.escape(b['constraint'])}' data-row='{html.escape(b['row'])}' "
                        f"data-estimate-bp='{b['estimate_bp']!r}' data-exact-bp='{b['exact_bp']!r}'>"
                        f"{html.escape(b['sentence'])}</li>" for b in ex.binding)
        parts.append(f"<ul id='binding'>{items}</ul>")
    else:
        parts.append("<p id='binding'>None: every constraint has slack.</p>")
    parts.append(f"<h2>Check</h2><p>{check.rows_checked} rows checked with numpy against their bounds; "
                 f"{len(check.violations)} violations beyond {check.tolerance:g}.</p>")
    prov = record.provenance
    versions = ", ".join(f"{k} {html.escape(str(v))}" for k, v in prov.versions.items())
    parts.append("<h2>Provenance</h2><table id='provenance'>"
                 + "".join(f"<tr><th>{k}</th><td><code>{html.escape(str(getattr(prov, k)))}</code></td></tr>"
                           for k in ("inputs_sha256", "snapshot_sha256", "policy_sha256", "holdings_sha256"))
                 + f"<tr><th>versions</th><td>{versions}</td></tr></table>"
                 + "<p class='muted'>Replay with <code>bondfolio replay DECISION.json</code>.</p></body></html>\n")
    return "".join(parts)


def _num(value: float, text: str, key: str) -> str:
    return f"<span data-key='{key}' data-value='{float(value)!r}'>{html.escape(text)}</span>"


def _pct(x: float, digits: int) -> str:
    return f"{_clean(x) * 100:.{digits}f}%"


def _amount(x: float, spec: str) -> str:
    """An amount in the base currency; less than half a unit is shown as 0 (not -0)."""
    return format(x if abs(x) >= 0.5 else 0.0, spec)


def _clean(x: float) -> float:
    """Solver round-off (below 1e-9 of NAV) shown as 0, not as -0.00."""
    return 0.0 if abs(x) < 1e-9 else x


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _allocation_png(held: list[AllocationRow]) -> bytes:
    plt = _pyplot()
    shown = held[:30]
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(shown) + 1.2), dpi=110)
    y = range(len(shown))
    ax.barh([i + 0.2 for i in y], [a.weight * 100 for a in shown], 0.4, label="target", color="#2b6cb0")
    ax.barh([i - 0.2 for i in y], [a.current_weight * 100 for a in shown], 0.4, label="current", color="#a0aec0")
    ax.set_yticks(list(y), [a.id for a in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of NAV")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _figure_png(fig)


def _risk_png(ex: Explanation) -> bytes:
    plt = _pyplot()
    names = list(ex.risk["by_protocol"])
    columns = list(next(iter(ex.risk["by_protocol"].values()), {}).keys())
    fig, axes = plt.subplots(1, max(len(columns), 1), figsize=(3.2 * max(len(columns), 1), 0.3 * len(names) + 1.4),
                             dpi=110, squeeze=False)
    for ax, col in zip(axes[0], columns, strict=False):
        ax.barh(names, [ex.risk["by_protocol"][n][col] * 100 for n in names], color="#805ad5")
        ax.set_title(col.replace("_", " "), fontsize=9)
        ax.set_xlabel("% of NAV", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    return _figure_png(fig)
