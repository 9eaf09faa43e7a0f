"""The README's devnet command runs end to end: anvil, world, Safe, snapshot, holdings, allocation, plan."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.factories import ROOT


def test_devnet_example_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "devnet" / "run.py")], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "8 markets, 3 rounds" in out.stdout and "check: passed" in out.stdout
    decision = json.loads((ROOT / "out" / "devnet" / "decision.json").read_text())
    assert decision["check"]["passed"] is True
    protocols = {a["protocol"] for a in decision["allocation"]}
    assert protocols == {"aave-v3", "compound-v3", "morpho-blue", "metamorpho", "erc4626", "pendle"}
    plan = json.loads((ROOT / "out" / "devnet" / "plan.json").read_text())
    batch = json.loads((ROOT / "out" / "devnet" / "batch.json").read_text())
    assert plan["decision_sha256"] == decision["record_sha256"]
    assert len(batch["transactions"]) == plan["chains"][0]["call"]["transactions"] > 0
    assert plan["gas_cost"] is not None  # priced at the block's base fee and the file's native price
    assert "plan and batch written" in out.stdout
