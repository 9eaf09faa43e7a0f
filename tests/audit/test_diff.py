"""diff: input changes, allocation changes and their attribution."""


from __future__ import annotations

import json

import pytest

import bondfolio
from bondfolio.audit.diff import diff
from tests.factories import EXAMPLE, opportunity, snapshot, two_assets


# ---------------------------------------------------------------------------------------------- diff
def test_diff_ranks_the_input_change_that_moved_the_answer() -> None:
    _, pol = two_assets()
    snap = snapshot([opportunity("a", 0.06, protocol="pa"), opportunity("b", 0.04, protocol="pb"),
                     opportunity("c", 0.03, protocol="pc")])
    a = bondfolio.allocate(snap, pol).to_dict()
    snap2 = json.loads(json.dumps(snap))
    snap2["opportunities"][2]["apy"] = 0.035  # still the worst: moves nothing
    snap2["opportunities"][0]["apy"] = 0.03  # A now below B: A leaves, B takes 100 %
    b = bondfolio.allocate(snap2, pol).to_dict()
    report = diff(a, b)
    items = {i["item"] for i in report.inputs}
    assert items == {"opportunity 'a'", "opportunity 'c'"}
    moves = {g["group"]: g["moved"] for g in report.attribution}
    assert moves["snapshot: opportunity 'a'"] == pytest.approx(0.6, abs=1e-6)  # 30 % out of A, into B
    assert moves["snapshot: opportunity 'c'"] == pytest.approx(0.0, abs=1e-6)
    assert report.attribution[0]["group"] == "snapshot: opportunity 'a'"
    assert report.moved_total == pytest.approx(0.6, abs=1e-6)
    assert {x["id"] for x in report.allocation} == {"a", "b"}


def _example_policy(**caps: float) -> dict:
    """The example policy as data, with its unnamed group caps' common ``max`` changed by ``by``."""
    import tomllib

    pol = tomllib.loads((EXAMPLE / "policy.toml").read_text())
    for c in pol["constraints"]:
        if c["kind"] == "group_cap" and c["by"] in caps:
            c["max"] = caps[c["by"]]
    return pol


@pytest.fixture(scope="module")
def example_pair() -> tuple[dict, dict, dict]:
    snap = json.loads((EXAMPLE / "snapshot.json").read_text())
    hold = json.loads((EXAMPLE / "holdings.json").read_text())
    base = bondfolio.allocate(snap, _example_policy(), hold).to_dict()
    protocol = bondfolio.allocate(snap, _example_policy(protocol=0.20), hold).to_dict()
    chain = bondfolio.allocate(snap, _example_policy(chain=0.99), hold).to_dict()
    return base, protocol, chain


def test_diff_names_a_changed_unnamed_group_cap(example_pair: tuple[dict, dict, dict]) -> None:
    # three unnamed group_cap tables: each is identified by its policy label, not by its bare kind
    base, protocol, _ = example_pair
    report = diff(base, protocol)
    assert [i["item"] for i in report.inputs] == [
        "constraint 'group_cap{by=protocol, max=0.3}' -> 'group_cap{by=protocol, max=0.2}'"]
    assert report.inputs[0]["changes"] == {"max": [0.3, 0.2]}
    (only,) = report.attribution
    assert only["moved"] == pytest.approx(report.moved_total, abs=1e-6)  # the one change explains all of it
    assert report.moved_total > 0.05


def test_diff_attributes_nothing_to_a_slack_cap(example_pair: tuple[dict, dict, dict]) -> None:
    # the chain cap (base and arbitrum limits only; a common max of 0.99 binds nowhere: ethereum holds 97 %)
    # moves nothing
    base, _, chain = example_pair
    report = diff(base, chain)
    assert [i["item"] for i in report.inputs] == ["constraint 'group_cap{by=chain}' -> 'group_cap{by=chain, max=0.99}'"]
    assert report.moved_total == pytest.approx(0.0, abs=1e-6)
    (only,) = report.attribution
    assert only["moved"] == pytest.approx(0.0, abs=1e-6)  # its re-solve keeps the other two caps
