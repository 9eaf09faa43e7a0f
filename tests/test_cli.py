"""The command line end to end: outputs, exit codes, and nothing written on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bondfolio.cli import main
from tests.factories import EXAMPLE, opportunity, policy, snapshot


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
    assert list(data)[:6] == ["schema", "record_sha256", "policy", "as_of", "base_currency", "allocation"]
    assert list(data)[-2:] == ["timing", "inputs"]
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
    for args in ([], ["allocate"], ["validate"], ["schema"], ["risk-model"], ["stress"]):
        out = run(*args, "--help")
        assert out.returncode == 0 and "usage: bondfolio" in out.stdout
    assert "exit codes" in run("allocate", "--help").stdout


def test_risk_model_writes_factors_and_refuses_short_history(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from tests.inputs.test_history import OPPS, history

    snap = write(tmp_path / "s.json", snapshot(OPPS))
    hist = tmp_path / "h.csv"
    history().to_csv(hist, index=False)
    out = tmp_path / "s2.json"
    assert main(["risk-model", str(hist), "--snapshot", str(snap), "--out", str(out), "--method", "oas"]) == 0
    data = json.loads(out.read_text())
    assert data["risk"]["factors"]["names"][0] == "rate" and len(data["risk"]["factors"]["loadings"]) == 4
    assert "5 factors (rate, depeg:USDC" in capsys.readouterr().out
    history(days=30).to_csv(hist, index=False)
    target = tmp_path / "never.json"
    assert main(["risk-model", str(hist), "--snapshot", str(snap), "--out", str(target)]) == 2
    assert not target.exists()
    assert "fewer than 60 observed daily changes" in capsys.readouterr().err


def test_stress_lists_losses_worst_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opps = [opportunity("a", 0.05, protocol="pa", risk_score=0.2, tags=["oracle:x"]),
            opportunity("b", 0.04, protocol="pb", risk_score=0.1)]
    data = snapshot(opps)
    data["failure"] = {"sources": [{"group": "oracle:x", "probability": 0.01, "loss_given_failure": 0.3}]}
    snap = write(tmp_path / "s.json", data)
    pol = write(tmp_path / "p.json", policy({"kind": "max_weight", "max": 0.6}))
    decision = tmp_path / "d.json"
    assert main(["allocate", str(snap), str(pol), "--out", str(decision)]) == 0
    capsys.readouterr()
    scenarios = write(tmp_path / "sc.json", {"samples": 0, "rate_shocks_bp": [], "freeze": None})
    assert main(["stress", str(decision), "--snapshot", str(snap), "--scenarios", str(scenarios),
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # a nets 5 % - 0.01 x 0.3 - 0.01 x 0.5 (rule: 0.05 x 0.2) = 4.2 % > b's 4 % - 0.05 x 0.1 x 0.5: a at its cap
    losses = {s["name"]: s["loss"] for s in report["scenarios"]}
    assert losses == pytest.approx({"failure:oracle:x": 0.3 * 0.6, "failure:protocol:pa": 0.5 * 0.6,
                                    "failure:protocol:pb": 0.5 * 0.4, "no event": 0.0}, abs=1e-7)
    assert report["scenarios"][0]["name"] == "failure:protocol:pa"
    assert report["scenarios"][0]["loss_amount"] == pytest.approx(0.3 * 1_000_000, abs=0.1)
    assert report["summary"]["expected loss"] == pytest.approx(0.01 * 0.18 + 0.01 * 0.3 + 0.005 * 0.2, abs=1e-9)
    other = write(tmp_path / "other.json", snapshot(opps))
    assert main(["stress", str(decision), "--snapshot", str(other)]) == 2
    assert "pass the snapshot the decision was made from" in capsys.readouterr().err


def test_help_schema_validate_do_not_import_the_solver_stack() -> None:
    # --help, schema and validate start without cvxpy, scipy or pandas (timings: benchmarks/bench_startup.py);
    # the example policy has every constraint family that resolves against data (groups, liquidity, cvar, risk)
    import subprocess
    import sys

    code = """
import contextlib, io, sys
from bondfolio.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["schema", "snapshot"])
    main(["schema", "decision"])
    main(["schema", "policy"])
    main(["validate", "examples/treasury/snapshot.json", "examples/treasury/policy.toml",
          "--holdings", "examples/treasury/holdings.json"])
    try:
        main(["--help"])
    except SystemExit:
        pass
print(sorted(m for m in ("cvxpy", "scipy", "pandas", "sklearn") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_json_on_stdout_stays_json_when_highs_solves(tmp_path: Path) -> None:
    # a scenario LP goes to HiGHS, which prints a banner below Python on its first use in a process;
    # `--format json` on stdout must still be one JSON document (a fresh process, so HiGHS is new)
    snap = snapshot([opportunity("a", 0.06, tags=["oracle:a"]), opportunity("b", 0.04, tags=["oracle:b"])])
    snap["failure"] = {"sources": [{"group": "oracle:a", "probability": 0.02, "loss_given_failure": 0.5}]}
    pol = policy({"kind": "cvar", "max": 0.2, "alpha": 0.95, "scenarios": {"samples": 50, "seed": 1}}, gamma=0.0)
    done = run("allocate", str(write(tmp_path / "s.json", snap)), str(write(tmp_path / "p.json", pol)),
               "--format", "json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["solver"]["name"], record["solver"]["order_from"]) == ("HIGHS", "shape: scenario LP")
