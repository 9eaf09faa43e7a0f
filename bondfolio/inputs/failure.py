"""Protocol-failure tail risk: who fails, how likely, how much is lost, and who fails together.

A *failure source* is a protocol or a dependency many positions share: an oracle, a bridge, a
collateral type, a stablecoin issuer, a chain. It names a group the way constraints do
(``protocol:aave-v3``, ``chain:base``, ``asset:USDe``, or any ``key:value`` tag such as
``oracle:chainlink``, ``bridge:wormhole``, ``collateral:wsteth``, ``issuer:circle``) and carries an
annual failure probability and a loss given failure. When a source fails, every deposit in its
group loses ``loss_given_failure`` of its value: positions sharing a dependency fail together.

Protocols without an explicit ``protocol:`` source get one by the documented *score rule*::

    probability(protocol) = rule.probability_at_score_1 * max(risk_score of its deposits)
    loss_given_failure    = rule.loss_given_failure

Sources are independent of each other, so a deposit's expected annual loss rate is::

    el_i = 1 - prod_{s : i in s} (1 - p_s * lgd_s)

(it can lose at most its whole value). Hedges are not deposits and are not in failure groups
(a hedge venue's failure is out of this model's scope).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from bondfolio.errors import InputError
from bondfolio.inputs.base import StrictModel
from bondfolio.inputs.groups import ATTRIBUTES, attribute_values, members

__all__ = ["FailureEvents", "FailureModel", "FailureSource", "ScoreRule", "failure_events", "source_problems"]

class FailureSource(StrictModel):
    """One thing that can fail, and every deposit that fails with it."""

    group: str = Field(pattern=r"^[A-Za-z0-9_-]+:.+$")
    """A ``key:value`` group of :mod:`bondfolio.inputs.groups`: an attribute (``protocol:``, ``chain:``,
    ``asset:``, ``kind:``, ``tier:``, ``market:``, ``id:``) or a tag key (``oracle:chainlink``,
    ``bridge:wormhole``, ``collateral:wsteth``, ``issuer:circle``)."""
    probability: float = Field(ge=0.0, le=1.0)
    """Annual probability that it fails."""
    loss_given_failure: float = Field(ge=0.0, le=1.0)
    """Fraction of each member deposit's value lost when it fails."""


class ScoreRule(StrictModel):
    """How protocols without an explicit source get one from their opportunities' risk scores."""

    probability_at_score_1: float = Field(default=0.05, ge=0.0, le=1.0)
    """Annual failure probability of a protocol whose riskiest deposit has risk score 1; scales
    linearly with the score (score 0.2 gives a fifth of it)."""
    loss_given_failure: float = Field(default=0.5, ge=0.0, le=1.0)
    """Loss given failure of such a protocol."""


class FailureModel(StrictModel):
    """Explicit failure sources plus the rule that covers protocols they do not name."""

    sources: tuple[FailureSource, ...] = ()
    rule: ScoreRule | None = Field(default_factory=ScoreRule)
    """The score rule; ``null`` to model only the explicit sources."""

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: tuple[FailureSource, ...]) -> tuple[FailureSource, ...]:
        groups = [s.group for s in value]
        dupes = sorted({g for g in groups if groups.count(g) > 1})
        if dupes:
            raise ValueError(f"failure sources {dupes} appear twice: give each group once")
        return value


@dataclass(frozen=True)
class FailureEvents:
    """The failure sources resolved on a universe, as arrays.

    ``members[s, i]`` says deposit ``i`` fails with source ``s``; ``origin[s]`` is ``explicit`` or
    ``rule``.
    """

    names: list[str]
    probability: np.ndarray
    loss_given_failure: np.ndarray
    members: np.ndarray
    origin: list[str]

    @property
    def expected_loss_rate(self) -> np.ndarray:
        """Per opportunity, expected annual loss as a fraction of its value (0 for hedges)."""
        keep = 1.0 - self.probability * self.loss_given_failure
        with np.errstate(divide="ignore"):
            log_keep = np.log(np.maximum(keep, 0.0))
        total = self.members.T.astype(float) @ np.where(np.isfinite(log_keep), log_keep, 0.0)
        certain = self.members[~np.isfinite(log_keep)].any(axis=0) if self.members.size else np.zeros(0, bool)
        out = -np.expm1(total)
        if certain.size:
            out[certain] = 1.0
        return np.asarray(out)


def source_problems(opportunities: Sequence[Any], model: FailureModel) -> list[str]:
    """Each explicit source whose group key is unknown or which matches no deposit."""
    problems = []
    for s in model.sources:
        mask = members(opportunities, s.group)
        if mask is None:
            problems.append(f"failure source '{s.group}': '{s.group.split(':', 1)[0]}' is neither one of "
                            f"{list(ATTRIBUTES)} nor a tag key of any opportunity: fix the group")
        elif not mask.any():
            problems.append(f"failure source '{s.group}' matches no deposit of the snapshot: fix the group or drop it")
    return problems


def failure_events(opportunities: Sequence[Any], model: FailureModel) -> FailureEvents:
    """Resolve ``model`` on the opportunities: explicit sources first, then one rule source per
    protocol left."""
    names: list[str] = []
    prob, lgd, rows, origin = [], [], [], []
    opps = opportunities
    InputError.collect(source_problems(opps, model), "snapshot failure model")
    for s in model.sources:
        mask = members(opps, s.group)
        assert mask is not None
        names.append(s.group)
        prob.append(s.probability)
        lgd.append(s.loss_given_failure)
        rows.append(mask)
        origin.append("explicit")
    if model.rule is not None:
        scores = np.array([o.risk_score for o in opps], dtype=float)
        protocols = attribute_values(opps, "protocol")
        for protocol in sorted(set(protocols)):
            group = f"protocol:{protocol}"
            mask = members(opps, group)
            assert mask is not None
            if group in names or not mask.any():
                continue
            names.append(group)
            prob.append(model.rule.probability_at_score_1 * float(np.max(scores[mask])))
            lgd.append(model.rule.loss_given_failure)
            rows.append(mask)
            origin.append("rule")
    matrix = np.array(rows, dtype=bool).reshape(len(rows), len(opps))
    return FailureEvents(names, np.array(prob, dtype=float), np.array(lgd, dtype=float), matrix, origin)
