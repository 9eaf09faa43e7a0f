"""replay: byte-identical, tolerant and differing re-solves."""


from __future__ import annotations

import json
from typing import Any

import bondfolio
from bondfolio.audit.replay import replay
from bondfolio.solver.record import HASH_KEY
from tests.factories import (
    reseal,
    two_assets,
)


# ---------------------------------------------------------------------------------------------- replay
def test_replay_is_byte_identical(example_record: dict[str, Any]) -> None:
    result = replay(example_record)
    assert result.verdict == "identical" and result.ok
    assert result.record is not None and result.record.sha256 == example_record[HASH_KEY]


def test_replay_tolerance_and_differences() -> None:
    snap, pol = two_assets()
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
