"""Stress scenarios: joint failures, rate shocks, depegs, a liquidity freeze, custom shocks, and
sampled normal scenarios, as one loss matrix with probabilities.

Every scenario gives each position a *loss per unit of weight* (a fraction of the position's value,
positive = loss; hedges carry signed notional, so a short hedge gains where a long loses). The
portfolio's loss in scenario ``s`` is ``L[s] @ w`` as a fraction of NAV. Losses are instantaneous
(marked to market at the shock), accrual is not netted: a conservative view.

- ``failure:<group>``: the failure source fails (see :mod:`bondfolio.inputs.failure`); its member
  deposits lose ``loss_given_failure``. Probability: the source's annual probability.
- ``rate:+200bp``: rates move by ``dy``; a position loses ``duration * dy`` (hedges with negative
  duration gain). Probability: ``stress_probability`` each.
- ``depeg:<asset>``: the asset's price drops by ``drop``; deposits in it lose ``drop``, and every
  position with an exposure ``delta:<asset>`` loses ``drop * delta``. Probability as given.
- ``freeze``: withdrawals are suspended; exiting early means selling the claim at ``haircut``: every
  deposit of the frozen kinds loses ``haircut``. Probability: ``stress_probability``.
- custom scenarios: a loss per group or id, with their own probability.
- ``sample:<k>``: draws from ``N(0, Sigma * horizon_years)`` of returns (loss = minus the draw), from
  the snapshot's risk model (factor draws and specific draws; seeded, so deterministic). They share
  the probability left, ``1 - sum(explicit probabilities)``; without samples, a zero-loss scenario
  ``no event`` carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from bondfolio.errors import InputError
from bondfolio.inputs.base import StrictModel, read_source, validate_document
from bondfolio.inputs.groups import ATTRIBUTES
from bondfolio.inputs.kinds import Kind
from bondfolio.inputs.universe import Universe

__all__ = ["CustomScenario", "Depeg", "Freeze", "ScenarioSet", "ScenarioSettings", "build_scenarios", "cvar",
           "load_scenarios"]


class Depeg(StrictModel):
    """An asset's price drops (a stablecoin depeg, or any asset's crash)."""

    asset: str = Field(min_length=1)
    drop: float = Field(default=0.10, gt=0.0, le=1.0)
    """Fractional price drop (0.10 = the asset is worth 10 % less)."""
    probability: float = Field(default=0.01, ge=0.0, le=1.0)
    """Annual probability of the scenario."""


class Freeze(StrictModel):
    """Withdrawals are suspended for a while; getting out means selling the claim at a discount."""

    haircut: float = Field(default=0.02, gt=0.0, le=1.0)
    """Discount at which a frozen position can be sold, fraction of its value."""
    kinds: tuple[Kind, ...] = (Kind.floating, Kind.vault)
    """Which kinds of deposits are frozen (fixed-term tokens trade on their AMM and are not); each one
    of the opportunity kinds, so a typo is an error."""


class CustomScenario(StrictModel):
    """A scenario given as losses per group or opportunity id."""

    name: str = Field(min_length=1)
    probability: float = Field(ge=0.0, le=1.0)
    losses: dict[str, float]
    """``key:value`` group (``protocol:pendle``, ``oracle:redstone``) or opportunity id -> loss per unit
    of weight (fraction; negative for a gain). A position matched twice takes the larger loss."""


class ScenarioSettings(StrictModel):
    """Which scenarios to build (the ``scenarios`` table of a ``cvar`` constraint, or a file for
    ``bondfolio stress``)."""

    failures: bool = True
    """One joint-failure scenario per failure source of the snapshot's failure model."""
    rate_shocks_bp: tuple[float, ...] = (200.0, -200.0)
    """Parallel rate moves, basis points."""
    depegs: tuple[Depeg, ...] = ()
    freeze: Freeze | bool | None = Field(default_factory=Freeze)
    """The liquidity freeze; ``false`` (or ``null``) for none, ``true`` for the defaults."""
    stress_probability: float = Field(default=0.01, ge=0.0, le=1.0)
    """Annual probability given to each rate shock and to the freeze."""
    custom: tuple[CustomScenario, ...] = ()
    samples: int = Field(default=1000, ge=0, le=1_000_000)
    """Normal scenarios drawn from the risk model."""
    horizon_years: float = Field(default=1.0, gt=0.0, le=10.0)
    """Horizon of the sampled returns: their covariance is ``Sigma * horizon_years``."""
    seed: int = Field(default=0, ge=0)
    """Seed of the samples (the same seed gives the same scenarios)."""

    @field_validator("freeze", mode="after")
    @classmethod
    def _freeze_switch(cls, value: Freeze | bool | None) -> Freeze | None:
        # TOML has no null: ``freeze = false`` turns the scenario off, ``freeze = true`` keeps the defaults
        if isinstance(value, bool):
            return Freeze() if value else None
        return value

    @model_validator(mode="after")
    def _names(self) -> ScenarioSettings:
        names = [c.name for c in self.custom]
        dupes = sorted({x for x in names if names.count(x) > 1})
        if dupes:
            raise ValueError(f"custom scenarios {dupes} appear twice: give each a distinct name")
        return self


def load_scenarios(source: ScenarioSettings | str | Path | dict[str, Any]) -> ScenarioSettings:
    """Scenario settings from a model, a TOML/JSON file, JSON text or a mapping."""
    if isinstance(source, ScenarioSettings):
        return source
    raw, label = read_source(source, "scenarios")
    return validate_document(ScenarioSettings, raw, label)


@dataclass(frozen=True)
class ScenarioSet:
    """Scenarios as arrays: ``losses[s, i]`` per unit of weight, ``probability[s]`` summing to 1."""

    names: list[str]
    kinds: list[str]
    probability: np.ndarray
    losses: np.ndarray

    def portfolio_losses(self, w: np.ndarray) -> np.ndarray:
        """Loss of the portfolio in each scenario, fraction of NAV."""
        return np.asarray(self.losses @ np.asarray(w, dtype=float))


def build_scenarios(u: Universe, settings: ScenarioSettings) -> ScenarioSet:
    """The scenario set of ``settings`` on universe ``u``.

    Raises
    ------
    InputError
        A depeg or custom scenario names an asset, group or id the snapshot lacks, or the explicit
        scenarios' probabilities add up to more than 1.
    """
    opps = u.snapshot.opportunities
    deposit = ~u.hedge
    names: list[str] = []
    kinds: list[str] = []
    probs: list[float] = []
    rows: list[np.ndarray] = []
    problems: list[str] = []

    def add(name: str, kind: str, p: float, row: np.ndarray) -> None:
        names.append(name)
        kinds.append(kind)
        probs.append(p)
        rows.append(row)

    if settings.failures and u.failure is not None:
        ev = u.failure
        for s, name in enumerate(ev.names):
            add(f"failure:{name}", "failure", float(ev.probability[s]), ev.members[s] * ev.loss_given_failure[s])
    duration = u.numeric("duration")
    for bp in settings.rate_shocks_bp:
        add(f"rate:{bp:+g}bp", "rate", settings.stress_probability, duration * bp / 1e4)
    assets = set(u.attribute("asset"))
    for d in settings.depegs:
        delta = f"delta:{d.asset}"
        exposure = u.numeric(delta) if delta in u.exposure_names else np.zeros(u.n)
        if d.asset not in assets and delta not in u.exposure_names:
            problems.append(f"depeg of '{d.asset}': no opportunity is in that asset or has a '{delta}' exposure "
                            f"(assets: {sorted(assets)})")
            continue
        held = np.array([o.asset == d.asset for o in opps]) & deposit
        add(f"depeg:{d.asset}", "depeg", d.probability, d.drop * (held + exposure))
    if isinstance(settings.freeze, Freeze):  # a bool never survives validation
        frozen = np.array([o.kind in settings.freeze.kinds for o in opps]) & deposit
        add("freeze", "freeze", settings.stress_probability, settings.freeze.haircut * frozen)
    for c in settings.custom:
        row = np.full(u.n, -np.inf)
        for key, loss in c.losses.items():
            i = u.index_of(key)
            if i is not None:
                row[i] = max(row[i], loss)
                continue
            mask = u.members(key) if ":" in key else None
            if mask is None or not mask.any():
                problems.append(f"custom scenario '{c.name}': '{key}' is neither an opportunity id nor a group "
                                f"({'/'.join(ATTRIBUTES)} or a tag key) with deposits")
                continue
            row[mask] = np.maximum(row[mask], loss)
        add(c.name, "custom", c.probability, np.where(np.isfinite(row), row, 0.0))
    InputError.collect(problems, "scenarios")
    explicit = float(np.sum(probs))
    if explicit > 1.0 + 1e-12:
        listed = ", ".join(f"{n}={p:g}" for n, p in zip(names, probs, strict=True))
        raise InputError(f"the explicit scenarios' probabilities add up to {explicit:.6g} > 1 ({listed}): lower "
                         "them (e.g. stress_probability) or drop some", "scenarios")
    rest = max(1.0 - explicit, 0.0)
    losses = np.array(rows, dtype=float).reshape(len(rows), u.n)
    if settings.samples:
        draws = _normal_losses(u, settings)
        losses = np.vstack([losses, draws])
        names += [f"sample:{k}" for k in range(settings.samples)]
        kinds += ["sample"] * settings.samples
        probs += [rest / settings.samples] * settings.samples
    elif rest > 0:
        losses = np.vstack([losses, np.zeros((1, u.n))])
        names.append("no event")
        kinds.append("none")
        probs.append(rest)
    return ScenarioSet(names, kinds, np.array(probs, dtype=float), losses)


def _normal_losses(u: Universe, settings: ScenarioSettings) -> np.ndarray:
    """``settings.samples`` draws of minus the returns, ``N(0, Sigma h)``: ``-(R z + s * e) sqrt(h)``
    with ``Sigma = R R' + diag(s^2)`` (:attr:`Universe.risk_factor`)."""
    rng = np.random.default_rng(settings.seed)
    r, s = u.risk_factor
    k = r.shape[1]
    z = rng.standard_normal((settings.samples, k))
    e = rng.standard_normal((settings.samples, u.n))
    returns = z @ r.T + e * s
    return np.asarray(-returns * np.sqrt(settings.horizon_years))


def tail_weights(losses: np.ndarray, probability: np.ndarray, alpha: float) -> np.ndarray:
    """Per scenario, its weight in the worst ``1 - alpha`` of probability, divided by ``1 - alpha``
    (the boundary scenario counted fractionally): ``CVaR = weights @ losses``."""
    tail = 1.0 - alpha
    order = np.argsort(-losses, kind="stable")
    p = probability[order]
    before = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    out = np.zeros(probability.size)
    out[order] = np.clip(tail - before, 0.0, p) / tail
    return out


def cvar(losses: np.ndarray, probability: np.ndarray, alpha: float) -> tuple[float, float]:
    """``(CVaR, VaR)`` at level ``alpha`` of a discrete loss distribution, by sorting.

    CVaR is the probability-weighted mean of the worst ``1 - alpha`` of outcomes (the boundary
    scenario counted fractionally), the quantity the Rockafellar-Uryasev program minimizes; VaR is
    the smallest loss whose upper tail has mass at most ``1 - alpha``.
    """
    tail = 1.0 - alpha
    order = np.argsort(-losses, kind="stable")
    p = probability[order]
    value = float(tail_weights(losses, probability, alpha) @ losses)
    at = min(int(np.searchsorted(np.cumsum(p), tail * (1 - 1e-12))), p.size - 1)
    var = float(losses[order][at]) if p.size else 0.0
    return value, var
