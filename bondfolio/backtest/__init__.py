"""Backtests of a policy on real history, against baselines, and parameter sweeps on a distributed engine."""

from bondfolio.backtest.engine import BacktestResult, backtest, load_universe

__all__ = ["BacktestResult", "backtest", "load_universe"]
