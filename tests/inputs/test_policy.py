"""Policy and holdings validation, including references checked against the snapshot."""

from __future__ import annotations

import pytest

import bondfolio
from bondfolio.errors import InputError
from bondfolio.inputs import load_holdings, load_policy
from tests.factories import EXAMPLE, opportunity, policy, snapshot


def book() -> dict:
    return snapshot([opportunity("a", 0.05, protocol="aave-v3", tags=["oracle:chainlink"]),
                     opportunity("b", 0.04, protocol="compound-v3")])


def test_example_policy_loads() -> None:
    pol = load_policy(EXAMPLE / "policy.toml")
    assert pol.name == "dao-treasury"
    assert {c.kind for c in pol.constraints} >= {"budget", "group_cap", "duration", "liquidity_buffer",
                                                  "risk_budget"}


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(InputError, match=r"constraint #1 has kind 'max_wieght', which is not a constraint kind: "
                                         r"use one of \['budget', .*'max_weight'"):
        load_policy(policy({"kind": "max_wieght", "max": 0.2}))


def test_solver_added_kind_not_allowed_in_policy() -> None:
    with pytest.raises(InputError, match="kind 'long_only', which is not a constraint kind"):
        load_policy(policy({"kind": "long_only"}))


def test_constraint_field_error_names_constraint() -> None:
    with pytest.raises(InputError, match=r"constraint #2 'caps' \(group_cap\): field 'max'"):
        load_policy(policy({"kind": "budget"}, {"kind": "group_cap", "name": "caps", "by": "protocol", "max": 1.5}))


def test_constraint_unknown_parameter_rejected() -> None:
    with pytest.raises(InputError, match=r"constraint #1 \(duration\): field 'targte'"):
        load_policy(policy({"kind": "duration", "targte": 1.0, "tolerance": 0.1}))


def test_empty_band_rejected() -> None:
    with pytest.raises(InputError, match=r"the band is empty: min 2\.0 exceeds max 1\.0"):
        load_policy(policy({"kind": "duration", "min": 2.0, "max": 1.0}))


def test_group_cap_unknown_protocol_is_error() -> None:
    pol = policy({"kind": "group_cap", "by": "protocol", "limits": {"aave-v4": 0.2}})
    with pytest.raises(InputError, match=r"constraint 'group_cap\{by=protocol\}': limits name protocol "
                                         r"\['aave-v4'\], which no "
                                         r"opportunity of the snapshot has \(known: \['aave-v3', 'compound-v3'\]\)"):
        bondfolio.validate(book(), pol)


def test_group_by_unknown_attribute_is_error() -> None:
    pol = policy({"kind": "group_cap", "by": "issuer", "max": 0.5})
    with pytest.raises(InputError, match=r"cannot group by 'issuer': use one of \['id', 'protocol'.*'oracle'\]"):
        bondfolio.validate(book(), pol)


def test_selector_unknown_tag_is_error() -> None:
    pol = policy({"kind": "max_weight", "max": 0.5, "select": {"tags": ["oracle:redstone"]}})
    with pytest.raises(InputError, match=r"names tag 'oracle:redstone', which no opportunity of the snapshot has"):
        bondfolio.validate(book(), pol)


def test_selector_unknown_id_is_error() -> None:
    pol = policy({"kind": "min_weight", "limits": {"zzz": 0.1}})
    with pytest.raises(InputError, match=r"limits names 'zzz', which is not an opportunity of the snapshot"):
        bondfolio.validate(book(), pol)


def test_trading_cost_unknown_id_is_error() -> None:
    pol = policy(objective={"trading_cost_bp_by_id": {"zzz": 3.0}})
    with pytest.raises(InputError, match=r"trading_cost_bp_by_id names \['zzz'\]"):
        bondfolio.validate(book(), pol)


def test_turnover_needs_holdings() -> None:
    with pytest.raises(InputError, match=r"constraint 'turnover\{max=0.1\}': needs current holdings"):
        bondfolio.validate(book(), policy({"kind": "turnover", "max": 0.1}))


def test_no_nav_and_no_holdings() -> None:
    with pytest.raises(InputError, match="no NAV: the policy sets no 'nav' and no holdings were given"):
        bondfolio.validate(book(), policy(nav=None))


def test_nav_from_holdings() -> None:
    summary = bondfolio.validate(book(), policy(nav=None), {"positions": {"a": 600.0}, "cash": 400.0})
    assert summary["nav"] == 1000.0


def test_holdings_unknown_id_never_dropped() -> None:
    with pytest.raises(InputError, match=r"holding 'zzz' is not an opportunity of the snapshot"):
        bondfolio.validate(book(), policy(), {"positions": {"zzz": 5.0}})


def test_holdings_negative_deposit() -> None:
    with pytest.raises(InputError, match=r"holding 'a' is -5 base: only hedges may be negative"):
        bondfolio.validate(book(), policy(), {"positions": {"a": -5.0}})


def test_holdings_in_tokens_converted_by_price() -> None:
    snap = snapshot([opportunity("a", 0.05, price=2.0), opportunity("b", 0.04)])
    summary = bondfolio.validate(snap, policy(nav=None), load_holdings({"unit": "tokens", "positions": {"a": 100.0}}))
    assert summary["nav"] == 200.0


def test_duplicate_constraints_need_names() -> None:
    pol = policy({"kind": "max_weight", "max": 0.5, "select": {"ids": ["a"]}},
                 {"kind": "max_weight", "max": 0.5, "select": {"ids": ["b"]}})
    with pytest.raises(InputError, match=r"constraints \['max_weight\{max=0.5\}'\] appear twice"):
        bondfolio.validate(book(), pol)


def test_two_budgets_rejected() -> None:
    with pytest.raises(InputError, match="has 2 budget constraints"):
        bondfolio.validate(book(), policy({"kind": "budget"}, {"kind": "budget", "name": "b2"}))


def test_solver_order_validated() -> None:
    with pytest.raises(InputError, match="solver order is empty"):
        load_policy(policy(solver={"order": []}))
