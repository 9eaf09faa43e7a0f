"""A backtest's files: ``nav.csv``, ``weights.csv``, ``metrics.json``, the plots and ``report.html``."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from bondfolio.backtest.engine import BacktestResult

__all__ = ["write_outputs"]


def _atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    tmp.replace(path)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _plots(result: BacktestResult) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nav = result.nav_frame()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in nav.columns:
        ax.plot(nav.index, (nav[name] / nav[name].iloc[0] - 1) * 100, label=name)
    ax.set_ylabel("cumulative return, %")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    cumulative = _png(fig)
    w = result.weights_frame()
    policy = w[w.strategy == "policy"].pivot_table(index="date", columns="id", values="weight", aggfunc="last")
    policy = policy.loc[:, policy.max() > 0.01]
    fig, ax = plt.subplots(figsize=(8, 4))
    if not policy.empty:
        ax.stackplot(policy.index, *(policy[c] * 100 for c in policy.columns), labels=list(policy.columns))
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylabel("policy weights, % of NAV")
    weights = _png(fig)
    return {"cumulative.png": cumulative, "weights.png": weights}


def write_outputs(result: BacktestResult, out: Path, title: str) -> dict[str, Any]:
    """Write every file into ``out`` (each atomically); returns the metrics."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = result.metrics()
    _atomic(out / "nav.csv", result.nav_frame().to_csv(float_format="%.6f", lineterminator="\n"))
    _atomic(out / "weights.csv", result.weights_frame().to_csv(index=False, float_format="%.8f",
                                                               lineterminator="\n"))
    _atomic(out / "metrics.json", json.dumps({"strategies": metrics, "notes": result.notes,
                                              "seconds_per_step": result.seconds_per_step,
                                              "program_builds": result.rebuilds}, indent=2) + "\n")
    plots = _plots(result)
    for name, data in plots.items():
        _atomic(out / name, data)
    rows = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{m['realized_apy']:.3%}</td><td>{m['volatility']:.3%}</td>"
        f"<td>{m['max_drawdown']:.4%}</td><td>{m['turnover']:.2f}</td><td>{sum(m['costs'].values()):,.0f}</td>"
        f"<td>{m['rebalances']}</td><td>{m['breach_days']}</td><td>{m['final_nav']:,.0f}</td></tr>"
        for s, m in metrics.items())
    images = "".join(f"<img alt='{name}' src='data:image/png;base64,{base64.b64encode(data).decode()}'/>"
                     for name, data in plots.items())
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
            "td:first-child{text-align:left}img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{result.dates[0]} to {result.dates[-1]}, "
            f"{len(result.decisions)} sealed decisions in decisions/</p>"
            "<table id='metrics'><tr><th>strategy</th><th>realized APY</th><th>volatility</th><th>max drawdown</th>"
            "<th>turnover</th><th>costs</th><th>rebalances</th><th>breach days</th><th>final NAV</th></tr>"
            f"{rows}</table>{images}</body></html>\n")
    _atomic(out / "report.html", page)
    return metrics
