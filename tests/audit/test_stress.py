"""stress: which scenario set a decision is stressed under, and its losses by hand."""

from __future__ import annotations

import pytest

import bondfolio
from bondfolio.audit.stress import stress
from bondfolio.errors import InputError
from tests.factories import opportunity, policy, snapshot


def _two_cvar_decision() -> bondfolio.Decision:
    # two cvar tables with different scenario sets: a custom 30 % loss on a, or on b
    snap = snapshot([opportunity("a", 0.05, protocol="pa"), opportunity("b", 0.04, protocol="pb")])
    base = {"failures": False, "rate_shocks_bp": [], "freeze": None, "samples": 0}
    on_a = {**base, "custom": [{"name": "a fails", "probability": 0.1, "losses": {"a": 0.3}}]}
    on_b = {**base, "custom": [{"name": "b fails", "probability": 0.1, "losses": {"b": 0.3}}]}
    pol = policy({"kind": "max_weight", "max": 0.6},
                 {"kind": "cvar", "name": "tail-a", "alpha": 0.9, "max": 0.5, "scenarios": on_a},
                 {"kind": "cvar", "name": "tail-b", "alpha": 0.9, "max": 0.5, "scenarios": on_b})
    return bondfolio.allocate(snap, pol)


def test_several_cvar_scenario_sets_are_never_picked_silently() -> None:
    d = _two_cvar_decision()
    with pytest.raises(InputError, match=r"2 cvar constraints with different scenarios \(\['tail-a', 'tail-b'\]\): "
                                         r"choose one with --constraint"):
        stress(d)
    # a at its 60 % cap, b 40 %: each scenario loses 30 % of its position
    a = stress(d, constraint="tail-a").frame["loss"].to_dict()
    b = stress(d, constraint="tail-b").frame["loss"].to_dict()
    assert a == pytest.approx({"a fails": 0.3 * 0.6, "no event": 0.0}, abs=1e-7)
    assert b == pytest.approx({"b fails": 0.3 * 0.4, "no event": 0.0}, abs=1e-7)
    with pytest.raises(InputError, match=r"has no cvar constraint 'tail-c' \(its cvar constraints: \['tail-a', "
                                         r"'tail-b'\]\)"):
        stress(d, constraint="tail-c")
