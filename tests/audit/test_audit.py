"""Decision records, replay, explain, infeasibility diagnosis, diff and frontier: hand-checked numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bondfolio
from bondfolio.audit.diff import diff
from bondfolio.audit.explain import explain
from bondfolio.audit.frontier import frontier
from bondfolio.audit.replay import replay
from bondfolio.errors import InfeasibleError, InputError
from bondfolio.inputs.scenarios import cvar
from bondfolio.solver.diagnose import Diagnosis
from bondfolio.solver.record import HASH_KEY, load_decision, record_sha256
from tests.factories import EXAMPLE, ROOT, opportunity, policy, reseal, snapshot

#: Weights: the independent check's tolerance (solvers stop at a 1e-9 gap).
WTOL = 1e-7
#: bp figures from duals and re-solves: 1e-3 bp (duals are accurate to ~1e-7 in APY units).
BPTOL = 1e-3


def _example() -> bondfolio.Decision:
    return bondfolio.allocate(EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json")


@pytest.fixture(scope="module")
def example_record() -> dict[str, Any]:
    return _example().to_dict()


def _two_assets() -> tuple[dict[str, Any], dict[str, Any]]:
    """A at 6 % capped at 30 %, B at 4 %: A 30 %, B 70 %; A's cap is worth 6 % - 4 % per unit."""
    snap = snapshot([opportunity("a", 0.06, protocol="pa"), opportunity("b", 0.04, protocol="pb")])
    return snap, policy({"kind": "max_weight", "limits": {"a": 0.3}})


# ---------------------------------------------------------------------------------------------- records
def test_record_embeds_inputs_and_verifies_its_hash(example_record: dict[str, Any]) -> None:
    rec = load_decision(example_record)
    assert rec.sha256 == record_sha256(example_record) == example_record[HASH_KEY]
    snap, pol, hold = rec.inputs_for()
    assert [o.id for o in snap.opportunities] == list(rec.weights.index)
    assert pol.name == "dao-treasury" and hold is not None
    # timing is outside the hash: changing it keeps the record valid
    timed = json.loads(json.dumps(example_record))
    timed["timing"]["solve_seconds"] = 123.0
    assert load_decision(timed).sha256 == rec.sha256


def test_tampered_record_is_refused(example_record: dict[str, Any]) -> None:
    bad = json.loads(json.dumps(example_record))
    bad["allocation"][0]["weight"] += 0.01
    with pytest.raises(InputError, match="edited or damaged"):
        load_decision(bad)
    bad = json.loads(json.dumps(example_record))
    bad["inputs"]["policy"]["nav"] = 1.0  # an embedded input changed and the record re-sealed by hand
    with pytest.raises(InputError, match="policy's sha256"):
        load_decision(reseal(bad)).inputs_for()
    del bad[HASH_KEY]
    with pytest.raises(InputError, match="no 'record_sha256'"):
        load_decision(bad)


def test_record_without_inputs_needs_the_files(tmp_path: Path) -> None:
    snap, pol = _two_assets()
    d = bondfolio.allocate(snap, pol, embed_inputs=False).to_dict()
    assert "inputs" not in d
    with pytest.raises(InputError, match="not embedded"):
        replay(d)
    assert replay(d, snapshot=snap, policy=pol).verdict == "identical"
    other = json.loads(json.dumps(snap))
    other["opportunities"][1]["apy"] = 0.05
    with pytest.raises(InputError, match="snapshot's sha256"):
        replay(d, snapshot=other, policy=pol)


# ---------------------------------------------------------------------------------------------- replay
def test_replay_is_byte_identical(example_record: dict[str, Any]) -> None:
    result = replay(example_record)
    assert result.verdict == "identical" and result.ok
    assert result.record is not None and result.record.sha256 == example_record[HASH_KEY]


def test_replay_tolerance_and_differences() -> None:
    snap, pol = _two_assets()
    rec = bondfolio.allocate(snap, pol).to_dict()
    near = json.loads(json.dumps(rec))
    near["allocation"][0]["weight"] += 5e-8  # inside the stated 1e-7 tolerance
    assert replay(reseal(near)).verdict == "equivalent"
    far = json.loads(json.dumps(rec))
    far["allocation"][0]["weight"] = 0.25
    result = replay(reseal(far))
    assert result.verdict == "different" and not result.ok
    paths = [d.path for d in result.differences]
    assert "allocation[a].weight" in paths
    assert "different" in result.text()


def test_determinism_across_runs_and_processes(example_record: dict[str, Any]) -> None:
    """The issue's 100-run figure is benchmarks/bench_determinism.py; here: 3 runs in-process and 2
    fresh processes with different hash seeds, all byte-identical outside ``timing``."""
    texts = set()
    for _ in range(3):
        d = _example().to_dict()
        d.pop("timing")
        texts.add(json.dumps(d, sort_keys=False))
    assert len(texts) == 1
    code = ("import bondfolio,sys;d=bondfolio.allocate(sys.argv[1],sys.argv[2],sys.argv[3]).to_dict();"
            "print(d['record_sha256'])")
    for seed in ("1", "987"):
        out = subprocess.run([sys.executable, "-c", code, str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "policy.toml"),
                              str(EXAMPLE / "holdings.json")], capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == example_record[HASH_KEY]


# ---------------------------------------------------------------------------------------------- explain
def test_explain_prices_a_cap_by_hand() -> None:
    snap, pol = _two_assets()
    e = explain(bondfolio.allocate(snap, pol))
    (cap,) = [b for b in e.binding if b["kind"] == "max_weight"]
    assert cap["row"] == "a" and cap["bound"] == pytest.approx(0.3) and cap["to"] == pytest.approx(0.31)
    # one more point of A instead of B: 0.01 x (6 % - 4 %) = 2 bp, by the dual and by the re-solve
    assert cap["estimate_bp"] == pytest.approx(2.0, abs=BPTOL)
    assert cap["exact_bp"] == pytest.approx(2.0, abs=BPTOL)
    assert cap["expected_apy_change_bp"] == pytest.approx(2.0, abs=BPTOL)
    assert "from 30% to 31% adds 2.00 bp" in cap["sentence"]
    pos = {p["id"]: p for p in e.positions}
    # B is the marginal asset: it prices the budget (4 %), so its edge is 0; A's cap is worth 2 %
    assert pos["b"]["shared"] == pytest.approx(0.04, abs=1e-7) and pos["b"]["edge"] == pytest.approx(0.0, abs=1e-7)
    assert pos["a"]["edge"] == pytest.approx(0.02, abs=1e-7) and pos["a"]["status"].startswith("at max_weight")


def test_explain_example_satisfies_optimality_and_contributions_add_up(example_record: dict[str, Any]) -> None:
    e = explain(example_record, max_exact=2)
    costs = e.to_dict()
    pol = load_decision(example_record).inputs_for()[1]
    by_id = pol.objective.trading_cost_bp_by_id
    for p in costs["positions"]:
        cost = by_id.get(p["id"], pol.objective.trading_cost_bp) / 1e4
        if p["status"] == "between its bounds":  # KKT: net = shared + a trading-cost subgradient
            assert abs(p["edge"]) <= cost + 5e-5, p
        elif p["status"] == "not held":  # not worth entering: it lacks yield (up to its trading cost)
            assert p["edge"] <= cost + 5e-5, p
    risk = e.risk
    assert sum(r["volatility"] for r in risk["by_protocol"].values()) == pytest.approx(
        example_record["metrics"]["volatility"], rel=1e-9)
    (c,) = risk["cvar"]
    assert c["value"] == pytest.approx(0.06, abs=1e-7)  # the binding limit
    assert sum(r["cvar_0.95"] for r in risk["by_protocol"].values()) == pytest.approx(c["value"], rel=1e-9)
    assert sum(r["failure"] for r in risk["by_protocol"].values()) == pytest.approx(
        example_record["metrics"]["expected_failure_loss"], rel=1e-9)
    exact = [b for b in e.binding if b["exact_bp"] is not None]
    assert len(exact) == 2 and all(b["exact_bp"] > 0 for b in exact)


def test_cvar_contributions_by_hand() -> None:
    from bondfolio.audit.explain import _cvar_contributions

    losses = np.array([[0.1, 0.0], [0.0, 0.2], [0.05, 0.05], [0.0, 0.0]])
    prob = np.array([0.1, 0.1, 0.3, 0.5])
    w = np.array([0.5, 0.5])
    contrib, value = _cvar_contributions(losses, prob, 0.8, w)
    # portfolio losses 0.05, 0.10, 0.05, 0: the tail (20 %) is scenario 2 (10 %) and half of the 0.05 mass
    assert value == pytest.approx(cvar(losses @ w, prob, 0.8)[0]) == pytest.approx((0.1 * 0.1 + 0.1 * 0.05) / 0.2)
    assert contrib.sum() == pytest.approx(value)


# ---------------------------------------------------------------------------------------------- diagnosis
def _conflict() -> tuple[dict[str, Any], dict[str, Any]]:
    """Durations 0 and 3 y; the long bond capped at 50 %: at most 1.5 y, but the floor asks 2 y."""
    snap = snapshot([opportunity("cash-like", 0.04), opportunity("bond", 0.05, kind="fixed", duration=3.0)])
    pol = policy({"kind": "max_weight", "limits": {"bond": 0.5}}, {"kind": "duration", "min": 2.0, "max": 3.0},
                 {"kind": "group_cap", "by": "protocol", "max": 1.0})
    return snap, pol


def test_infeasibility_names_the_conflict_and_the_smallest_relaxation() -> None:
    snap, pol = _conflict()
    with pytest.raises(InfeasibleError) as info:
        bondfolio.allocate(snap, pol)
    diag = info.value.diagnosis
    assert isinstance(diag, Diagnosis)
    assert diag.conflict == ["max_weight", "duration{min=2.0, max=3.0}"]
    # lowering the floor 0.5 y costs 5 steps of 0.1 y; raising the cap to 2/3 costs 16.7 steps of 1 pp
    (joint,) = diag.relaxation
    assert joint.kind == "duration" and joint.side == "lower" and joint.to == pytest.approx(1.5, abs=1e-6)
    alone = {k: v for k, v in diag.alternatives.items()}
    (cap,) = alone["max_weight"] or []
    assert cap.side == "upper" and cap.to == pytest.approx(2 / 3, abs=1e-6)
    (floor,) = alone["duration{min=2.0, max=3.0}"] or []
    assert floor.to == pytest.approx(1.5, abs=1e-6)
    text = str(info.value)
    assert "conflict" in text and "from 2 y to 1.5 y" in text and "from 50% to 66.67%" in text


def test_cli_infeasible_prints_the_diagnosis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bondfolio.cli import main

    snap, pol = _conflict()
    (tmp_path / "s.json").write_text(json.dumps(snap))
    (tmp_path / "p.json").write_text(json.dumps(pol))
    out = tmp_path / "d.json"
    assert main(["allocate", str(tmp_path / "s.json"), str(tmp_path / "p.json"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "diagnosis: these 2 constraints conflict" in err and "smallest relaxation" in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- diff
def test_diff_ranks_the_input_change_that_moved_the_answer() -> None:
    _, pol = _two_assets()
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


# ---------------------------------------------------------------------------------------------- frontier
def test_frontier_is_monotone_and_contains_the_decision() -> None:
    snap = snapshot([opportunity("a", 0.03), opportunity("b", 0.05), opportunity("c", 0.07)],
                    cov=np.diag([1e-5, 4e-4, 2.5e-3]))
    pol = policy({"kind": "max_weight", "max": 0.8}, gamma=20.0)
    f = frontier(snap, pol, points=12)
    frame = f.frame
    assert len(frame) == 12 and frame["risk_aversion"].is_monotonic_increasing
    assert np.all(np.diff(frame["expected_apy"]) <= 1e-9) and np.all(np.diff(frame["volatility"]) <= 1e-9)
    own = frame[frame["is_policy"]]
    d = bondfolio.allocate(snap, pol)
    assert len(own) == 1 and float(own["expected_apy"].iloc[0]) == pytest.approx(d.metrics["expected_apy"], abs=1e-7)
    # gamma = 0: the highest yield the caps allow (80 % c, 20 % b)
    assert float(frame["expected_apy"].iloc[0]) == pytest.approx(0.8 * 0.07 + 0.2 * 0.05, abs=1e-7)
    assert (frame["check_max_violation"] <= 1e-7).all()
