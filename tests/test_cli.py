"""The command line end to end: outputs, exit codes, and nothing written on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bondfolio.cli import main
from tests.conftest import EXAMPLE, opportunity, policy, snapshot


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bondfolio.cli", *args], capture_output=True, text=True, check=False)


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_allocate_example_table_end_to_end() -> None:
    out = run("allocate", str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "policy.toml"),
              "--holdings", str(EXAMPLE / "holdings.json"))
    assert out.returncode == 0, out.stderr
    assert "policy 'dao-treasury'" in out.stdout
    assert "check: passed" in out.stdout and "binding constraints" in out.stdout


def test_allocate_json_out_written_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "decision.json"
    code = main(["allocate", str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "policy.toml"), "--out", str(target)])
    assert code == 0
    data = json.loads(target.read_text())
    assert list(data)[:5] == ["schema", "policy", "as_of", "base_currency", "allocation"]
    for key in ("allocation", "metrics", "constraints", "check", "solver"):
        assert key in data
    assert {"id", "weight", "amount"} <= set(data["allocation"][0])
    assert data["check"]["passed"] is True
    assert [p.name for p in tmp_path.iterdir()] == ["decision.json"]  # no temporary file left
    assert "check: passed" in capsys.readouterr().out


def test_allocate_csv(tmp_path: Path) -> None:
    target = tmp_path / "d.csv"
    assert main(["allocate", str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "policy.toml"), "--out", str(target),
                 "--format", "csv"]) == 0
    lines = target.read_text().splitlines()
    assert lines[0].startswith("id,protocol,chain,asset") and lines[-1].startswith("cash,")
    assert len(lines) == 1 + 33 + 1


def test_invalid_input_exit_2_nothing_written(tmp_path: Path) -> None:
    snap = snapshot([opportunity("a", 0.05), opportunity("a", 0.04)])
    target = tmp_path / "out.json"
    out = run("allocate", str(write(tmp_path / "s.json", snap)), str(EXAMPLE / "policy.toml"), "--out", str(target))
    assert out.returncode == 2
    assert "opportunity 'a' appears twice" in out.stderr
    assert not target.exists()


def test_infeasible_exit_3_existing_output_untouched(tmp_path: Path) -> None:
    snap = write(tmp_path / "s.json", snapshot([opportunity("a", 0.05), opportunity("b", 0.04)]))
    pol = write(tmp_path / "p.json", policy({"kind": "max_weight", "max": 0.3}))
    target = tmp_path / "out.json"
    target.write_text("previous decision")
    code = main(["allocate", str(snap), str(pol), "--out", str(target)])
    assert code == 3
    assert target.read_text() == "previous decision"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "p.json", "s.json"]


def test_solver_failure_exit_4(tmp_path: Path) -> None:
    snap = write(tmp_path / "s.json", snapshot([opportunity("a", 0.05), opportunity("b", 0.04)]))
    pol = write(tmp_path / "p.json", policy(solver={"order": ["CLARABEL"], "check_tolerance": 1e-300}))
    out = run("allocate", str(snap), str(pol))
    assert out.returncode == 4
    assert "every solver's answer violated a constraint" in out.stderr


def test_validate_reports_rows_and_errors(tmp_path: Path) -> None:
    ok = run("validate", str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "policy.toml"),
             "--holdings", str(EXAMPLE / "holdings.json"))
    assert ok.returncode == 0 and "policy 'dao-treasury'" in ok.stdout and "long_only: 33 rows" in ok.stdout
    pol = write(tmp_path / "p.json", policy({"kind": "group_cap", "by": "protocol", "limits": {"nope": 0.1}}))
    bad = run("validate", str(EXAMPLE / "snapshot.json"), str(pol))
    assert bad.returncode == 2 and "limits name protocol ['nope']" in bad.stderr


def test_schema_commands() -> None:
    for which in ("snapshot", "holdings", "policy"):
        out = run("schema", which)
        assert out.returncode == 0
        json.loads(out.stdout)
    pol = json.loads(run("schema", "policy").stdout)
    assert "GroupCap" in pol["$defs"] and "discriminator" in json.dumps(pol)


def test_help_everywhere() -> None:
    for args in ([], ["allocate"], ["validate"], ["schema"]):
        out = run(*args, "--help")
        assert out.returncode == 0 and "usage: bondfolio" in out.stdout
    assert "exit codes" in run("allocate", "--help").stdout
