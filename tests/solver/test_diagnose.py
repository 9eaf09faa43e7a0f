"""Infeasibility diagnosis: the irreducible conflict and the smallest relaxation, by hand."""


from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bondfolio
from bondfolio.errors import InfeasibleError
from bondfolio.solver.diagnose import Diagnosis
from tests.factories import (
    opportunity,
    policy,
    snapshot,
)


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
