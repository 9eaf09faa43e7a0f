"""The hostile-input catalogue: one row per bad input, its expected exit code and a fragment of the
message; every row also checks that nothing was written. Files that are not UTF-8, nested without end,
documents hidden in strings, duplicate keys, strings in matrices, impossible rate curves, negative
counts, folders where files go, tampered records."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bondfolio.cli import main
from bondfolio.solver.record import HASH_KEY, record_sha256
from tests.factories import opportunity, policy, snapshot

GOOD_SNAPSHOT = snapshot([opportunity("a", 0.05, protocol="pa", tags=["issuer:acme:eu"]),
                          opportunity("b", 0.04, protocol="pb")])
GOOD_POLICY = policy({"kind": "max_weight", "max": 0.7})
GOOD_HOLDINGS = {"positions": {"a": 500_000.0, "b": 500_000.0}, "cash": 0.0}
GOOD_MARKETS = '[[markets]]\nprotocol = "aave-v3"\nchain = "ethereum"\npool = "0x' + "11" * 20 + \
    '"\nasset = "0x' + "22" * 20 + '"\n'
GOOD_HISTORY = "date,apy:a,apy:b\n" + "".join(f"2026-01-{d:02d},0.05,0.04\n" for d in range(1, 29))


@dataclass
class Case:
    name: str
    kind: str
    """Which input is bad: snapshot, policy, holdings, markets, decision, history, args."""
    content: bytes | str | Callable[[Path], Any] | None
    code: int
    fragment: str
    suffix: str = ".json"


def _json(data: Any) -> str:
    return json.dumps(data)


def _deep_json(n: int = 10_000) -> str:
    return '{"x": ' + "[" * n + "]" * n + "}"


def _deep_toml(n: int = 10_000) -> str:
    return "x = " + "[" * n + "]" * n + "\n"


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(base))
    target: Any = data
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


def _file_cases(kind: str, good: str, suffix: str) -> list[Case]:
    """The file-level corruptions, for any input kind."""
    cases = [
        Case(f"{kind}-utf16", kind, good.encode("utf-16"), 2, "UTF-16", suffix),
        Case(f"{kind}-latin1", kind, good.encode("utf-8") + "\n# caf\xe9".encode("latin-1"), 2, "not UTF-8", suffix),
        Case(f"{kind}-binary", kind, b"\x00\x01\x02\x03" * 64, 2, "binary", suffix),
        Case(f"{kind}-binary-high", kind, bytes(range(128, 256)) * 4, 2, "not UTF-8", suffix),
        Case(f"{kind}-empty", kind, "", 2, "", suffix),
        Case(f"{kind}-missing", kind, None, 2, "does not exist", suffix),
        Case(f"{kind}-folder", kind, lambda p: p.mkdir(), 2, "folder", suffix),
        Case(f"{kind}-truncated", kind, good[: len(good) // 2], 2, "not valid", suffix),
    ]
    if suffix == ".json":
        cases += [
            Case(f"{kind}-deep-json", kind, _deep_json(), 2, "nests deeper", suffix),
            Case(f"{kind}-string-holding-document", kind, json.dumps(good), 2, "top level", suffix),
            Case(f"{kind}-top-level-array", kind, "[1, 2, 3]", 2, "top level", suffix),
            Case(f"{kind}-top-level-number", kind, "42", 2, "top level", suffix),
            Case(f"{kind}-duplicate-key", kind, good.replace("{", '{"dup": 1, "dup": 2, ', 1), 2, "twice", suffix),
        ]
    if suffix == ".toml":
        cases += [Case(f"{kind}-deep-toml", kind, _deep_toml(), 2, "nests deeper", suffix),
                  Case(f"{kind}-bad-toml", kind, "x = = 1\n", 2, "not valid TOML", suffix)]
    return cases


def _field_cases() -> list[Case]:
    s, p, h = GOOD_SNAPSHOT, GOOD_POLICY, GOOD_HOLDINGS
    cases = []
    for k, (field, value, fragment) in enumerate([
        ("apy", "0.05", "valid number"), ("apy", True, "valid number"), ("apy", 1e308, "less than or equal to 10"),
        ("apy", -2.0, "greater than or equal to -1"), ("duration", -1.0, "negative"),
        ("risk_score", 2.0, "less than or equal to 1"), ("tier", "gold", "'core', 'yield' or 'hedge'"),
        ("kind", "flaoting", "'floating', 'fixed', 'vault' or 'hedge'"), ("id", "has space", "pattern"),
        ("price", 0.0, "greater than 0"), ("tags", ["x", "x"], "repeat"), ("tvl", -5.0, "greater than or equal"),
        ("available_liquidity", "lots", "valid number"), ("withdrawal_delay_days", -1, "greater than or equal"),
        ("carry", 0.1, "hedges"), ("exposures", {"delta:ETH": "big"}, "valid number"),
        ("rate_curve", {"model": "kinked", "applies_to": "borrow", "kink": 0.9, "base": 0.0, "slope_low": 0.04,
                        "slope_high": 0.6, "total_supply": 100.0, "total_borrow": 300.0}, "exceeds total_supply"),
        ("rate_curve", {"model": "kinked", "applies_to": "borrow", "kink": 0.9, "base": 0.0, "slope_low": -0.04,
                        "slope_high": 0.6, "total_supply": 100.0, "total_borrow": 30.0}, "greater than or equal"),
        ("rate_curve", {"model": "adaptive", "rate_at_target": 0.04, "total_supply": 10.0, "total_borrow": 20.0},
         "exceeds total_supply"),
        ("rate_curve", {"model": "nope"}, "model"), ("maturity", "2026-01-01T00:00:00", "timezone"),
        ("execution", {"chain_id": 1}, "Field required"),
    ]):
        cases.append(Case(f"snapshot-opportunity-{k}-{field}", "snapshot",
                          _json(_with(s, f"opportunities.0.{field}", value)), 2, fragment))
    cov = [[1e-4, 0.0], [0.0, 1e-4]]
    for name, matrix, fragment in [
        ("string-entry", [["0.0001", 0.0], [0.0, 1e-4]], "not text or a boolean"),
        ("bool-entry", [[True, 0.0], [0.0, 1e-4]], "not text or a boolean"),
        ("huge", [[1e308, 0.0], [0.0, 1e-4]], "check the units"), ("asymmetric", [[1e-4, 1e-5], [0.0, 1e-4]],
                                                                     "not symmetric"),
        ("not-psd", [[1e-4, 1e-3], [1e-3, 1e-4]], "positive semi-definite"),
        ("wrong-shape", [[1e-4, 0.0]], "it must be 2 x 2"), ("ragged", [[1e-4], [0.0, 1e-4]], "array"),
        ("nan-token", None, "finite"),
    ]:
        if matrix is None:
            text = _json(_with(s, "risk.covariance", cov)).replace("0.0001", "NaN", 1)
        else:
            text = _json(_with(s, "risk.covariance", matrix))
        cases.append(Case(f"snapshot-covariance-{name}", "snapshot", text, 2, fragment))
    factors = {"loadings": [[1.0], [1.0]], "factor_covariance": [[1e-4]], "specific_variance": [1e-5, 1e-5]}
    for name, path, value, fragment in [
        ("loadings-string", "loadings", [["1"], [1.0]], "not text or a boolean"),
        ("specific-bool", "specific_variance", [True, 1e-5], "not text or a boolean"),
        ("specific-negative", "specific_variance", [-1e-5, 1e-5], "negative"),
    ]:
        data = _with(s, "risk", {"factors": _with(factors, path, value)})
        cases.append(Case(f"snapshot-factors-{name}", "snapshot", _json(data), 2, fragment))
    for name, data, fragment in [
        ("duplicate-id", _with(s, "opportunities.1.id", "a"), "twice"),
        ("no-opportunities", _with(s, "opportunities", []), "opportunit"),
        ("unknown-field", {**s, "colour": "red"}, "Extra inputs"),
        ("failure-unknown-key", {**s, "failure": {"sources": [{"group": "bridge:x", "probability": 0.1,
                                                               "loss_given_failure": 0.5}]}}, "neither one of"),
        ("failure-probability", {**s, "failure": {"sources": [{"group": "protocol:pa", "probability": 1.5,
                                                               "loss_given_failure": 0.5}]}}, "less than or equal"),
        ("schema", {**s, "schema": "bondfolio.snapshot/9"}, "schema"),
        ("as-of-naive", _with(s, "as_of.timestamp", "2026-01-01T00:00:00"), "timezone"),
    ]:
        cases.append(Case(f"snapshot-{name}", "snapshot", _json(data), 2, fragment))
    for name, data, fragment in [
        ("max-string", _with(p, "constraints.0.max", "0.1"), "valid number"),
        ("max-above-bound", _with(p, "constraints.0.max", 20.0), "less than or equal"),
        ("unknown-kind", _with(p, "constraints.0", {"kind": "max_wieght", "max": 0.1}), "not a constraint kind"),
        ("group-by-unknown", _with(p, "constraints.0", {"kind": "group_cap", "by": "colour", "max": 0.5}),
         "cannot group by"),
        ("select-unknown", _with(p, "constraints.0", {"kind": "max_weight", "max": 0.5,
                                                      "select": {"protocol": "nope"}}), "names protocol 'nope'"),
        ("select-kind-typo", _with(p, "constraints.0", {"kind": "max_weight", "max": 0.5,
                                                        "select": {"kind": "flaoting"}}), "flaoting"),
        ("freeze-typo", _with(p, "constraints.0", {"kind": "cvar", "max": 0.1,
                                                   "scenarios": {"freeze": {"kinds": ["flaoting"]}}}),
         "'floating', 'fixed', 'vault' or 'hedge'"),
        ("cvar-no-form", _with(p, "constraints.0", {"kind": "cvar"}), "give 'max'"),
        ("solver-empty", {**p, "solver": {"order": []}}, "empty"),
        ("cost-negative", {**p, "objective": {"trading_cost_bp": -1.0}}, "greater than or equal"),
        ("nav-zero", {**p, "nav": 0.0}, "greater than 0"), ("name-empty", {**p, "name": ""}, "at least 1"),
        ("cost-unknown-id", {**p, "objective": {"trading_cost_bp_by_id": {"zz": 2.0}}}, "zz"),
        ("limits-unknown", _with(p, "constraints.0", {"kind": "max_weight", "limits": {"zz": 0.1}}), "zz"),
        ("execution-negative", {**p, "execution": {"min_trade": -5.0}}, "greater than or equal"),
        ("rebalance-threshold", {**p, "rebalance": {"depeg_threshold": 2.0}}, "less than"),
        ("duplicate-constraints", {**p, "constraints": [p["constraints"][0], p["constraints"][0]]}, "twice"),
    ]:
        cases.append(Case(f"policy-{name}", "policy", _json(data), 2, fragment))
    for name, data, fragment in [
        ("negative", _with(h, "positions.a", -5.0), "only hedges may be negative"),
        ("huge", _with(h, "positions.a", 1e300), "less than or equal"),
        ("unknown-id", _with(h, "positions", {"zz": 5.0}), "holding 'zz' is not an opportunity"),
        ("string-amount", _with(h, "positions.a", "5"), "valid number"),
        ("cash-negative", {**h, "cash": -1.0}, "greater than or equal"),
        ("unit-typo", {**h, "unit": "coins"}, "'base' or 'tokens'"),
        ("account-bad", {**h, "account": "0x123"}, "20-byte hex address"),
    ]:
        cases.append(Case(f"holdings-{name}", "holdings", _json(data), 2, fragment))
    for name, text, fragment in [
        ("unknown-protocol", GOOD_MARKETS.replace("aave-v3", "aave-v9"), "aave-v9"),
        ("bad-address", GOOD_MARKETS.replace("0x" + "11" * 20, "0x123"), "20-byte hex address"),
        ("no-markets", "[chains.ethereum]\nchain_id = 1\n", "markets"),
        ("extra-field", GOOD_MARKETS + 'colour = "red"\n', "Extra inputs"),
    ]:
        cases.append(Case(f"markets-{name}", "markets", text, 2, fragment, ".toml"))
    for name, text, fragment in [
        ("non-numeric", GOOD_HISTORY.replace("0.05", "abc", 1), "is not a number"),
        ("inf", GOOD_HISTORY.replace("0.05", "inf", 1), "infinite"),
        ("huge", GOOD_HISTORY.replace("0.05", "1e308", 1), "beyond 1e6"),
        ("duplicate-day", GOOD_HISTORY + "2026-01-28,0.05,0.04\n", "repeats dates"),
        ("bad-date", GOOD_HISTORY.replace("2026-01-03", "yesterday"), "not an ISO date"),
        ("unknown-column", GOOD_HISTORY.replace("apy:b", "yield:b"), "none of"),
        ("unknown-id", GOOD_HISTORY.replace("apy:b", "apy:zz"), "zz"),
        ("blank", "  \n", "is empty"), ("header-only", "date,apy:a\n", "a"),
    ]:
        cases.append(Case(f"history-{name}", "history", text, 2, fragment, ".csv"))
    return cases


def _decision_cases() -> list[Case]:
    def record(edit: Callable[[dict[str, Any]], None], reseal: bool = True, nan: bool = False) -> Callable[[Path], Any]:
        def make(path: Path) -> None:
            from tests.factories import example_decision  # noqa: F401  (imported lazily: one allocation per case)

            data = json.loads(_RECORD.read_text())
            edit(data)
            if reseal:
                data[HASH_KEY] = record_sha256(data)
            text = json.dumps(data)
            if nan:
                text = text.replace('"volatility": ', '"volatility": NaN, "_x": ', 1)
            path.write_text(text)
        return make

    def drop(*keys: str) -> Callable[[dict[str, Any]], None]:
        def edit(d: dict[str, Any]) -> None:
            target = d
            for k in keys[:-1]:
                target = target[k]
            del target[keys[-1]]
        return edit

    cases = [
        Case("decision-edited", "decision", record(lambda d: d["metrics"].update(nav=1.0), reseal=False), 2,
             "edited or damaged"),
        Case("decision-no-hash", "decision", record(drop(HASH_KEY), reseal=False), 2, "has no 'record_sha256'"),
        Case("decision-schema", "decision", record(lambda d: d.update(schema="bondfolio.decision/0")), 2, "schema"),
        Case("decision-nan", "decision", record(lambda d: None, reseal=False, nan=True), 2, "NaN"),
        Case("decision-not-a-record", "decision", _json({"hello": 1}), 2, "not a bondfolio decision record"),
    ]
    for keys in [("metrics", "volatility"), ("metrics", "nav"), ("check",), ("solver",), ("provenance",
                 "snapshot_sha256"), ("cash",), ("timing",), ("constraints",)]:
        cases.append(Case(f"decision-missing-{'.'.join(keys)}", "decision", record(drop(*keys)), 2,
                          f"field '{'.'.join(keys)}': Field required"))
    cases.append(Case("decision-inputs-missing-snapshot", "decision", record(drop("inputs", "snapshot")), 2,
                      "inputs.snapshot"))
    cases.append(Case("decision-weight-string", "decision",
                      record(lambda d: d["allocation"][0].update(weight="0.1")), 2, "record format"))
    return cases


_RECORD = Path()


def _arg_cases() -> list[Case]:
    return [
        Case("args-negative-min-days", "args", ["risk-model", "{history}", "--snapshot", "{snapshot}", "--out",
                                                "{out}", "--min-days", "-5"], 2, "negative"),
        Case("args-negative-points", "args", ["frontier", "{snapshot}", "{policy}", "--points", "-1"], 2, "negative"),
        Case("args-zero-points", "args", ["frontier", "{snapshot}", "{policy}", "--points", "0"], 2, "1 or more"),
        Case("args-negative-max-groups", "args", ["diff", "{decision}", "{decision}", "--max-groups", "-3"], 2,
             "negative"),
        Case("args-block-negative", "args", ["snapshot", "--markets", "{markets}", "--rpc", "http://127.0.0.1:9",
                                             "--out", "{out}", "--block", "-1"], 2, "negative"),
        Case("args-rpc-no-scheme", "args", ["snapshot", "--markets", "{markets}", "--rpc", "127.0.0.1:8545",
                                            "--out", "{out}"], 2, "does not start with http"),
        Case("args-out-is-folder-allocate", "args", ["allocate", "{snapshot}", "{policy}", "--out", "{folder}"], 2,
             "it is a folder"),
        Case("args-out-is-folder-replay", "args", ["replay", "{decision}", "--out", "{folder}"], 2, "it is a folder"),
        Case("args-out-is-folder-report", "args", ["report", "{decision}", "--out", "{folder}", "--points", "0",
                                                   "--no-resolve"], 2, "it is a folder"),
        Case("args-out-is-folder-frontier", "args", ["frontier", "{snapshot}", "{policy}", "--points", "3", "--out",
                                                     "{folder}"], 2, "it is a folder"),
        Case("args-out-is-folder-risk-model", "args", ["risk-model", "{history}", "--snapshot", "{snapshot}",
                                                       "--out", "{folder}", "--min-days", "5"], 2, "it is a folder"),
        Case("args-bad-every", "args", ["backtest", "{policy_nonav}", "--history", "{folder}/none.duckdb", "--universe",
                                        "{folder}/u.toml", "--start", "2026-01-01", "--end", "2026-02-01",
                                        "--every", "weekly", "--out", "{out}"], 2, "does not exist"),
        Case("args-bad-address-plan", "args", ["plan", "{decision}", "--safe", "0xabc"], 2, "20-byte hex"),
        Case("args-bad-address-holdings", "args", ["holdings", "--markets", "{markets}", "--rpc", "http://x.invalid",
                                                   "--account", "nope", "--out", "{out}"], 2, "20-byte hex"),
    ]


CASES: list[Case] = [
    *_file_cases("snapshot", _json(GOOD_SNAPSHOT), ".json"),
    *_file_cases("policy", _json(GOOD_POLICY), ".json"),
    *_file_cases("policy-toml", 'name = "p"\nnav = 1000000.0\n', ".toml"),
    *_file_cases("holdings", _json(GOOD_HOLDINGS), ".json"),
    *_file_cases("markets", GOOD_MARKETS, ".toml"),
    *_file_cases("decision", _json({"schema": "bondfolio.decision/1"}), ".json"),
    *[c for c in _file_cases("history", GOOD_HISTORY, ".csv") if "truncated" not in c.name],
    *_field_cases(),
    *_decision_cases(),
    *_arg_cases(),
]


def _command(case: Case, bad: Path, paths: dict[str, Path]) -> list[str]:
    kind = case.kind.removesuffix("-toml")
    if kind == "snapshot":
        return ["validate", str(bad)]
    if kind == "policy":
        return ["validate", str(paths["snapshot"]), str(bad)]
    if kind == "holdings":
        return ["validate", str(paths["snapshot"]), str(paths["policy"]), "--holdings", str(bad)]
    if kind == "markets":
        return ["snapshot", "--markets", str(bad), "--rpc", "http://127.0.0.1:9", "--out", str(paths["out"])]
    if kind == "decision":
        return ["explain", str(bad), "--no-resolve"]
    if kind == "history":
        return ["risk-model", str(bad), "--snapshot", str(paths["snapshot"]), "--out", str(paths["out"]),
                "--min-days", "5"]
    raise AssertionError(kind)


def test_catalogue_has_at_least_150_cases() -> None:
    assert len(CASES) >= 150, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    global _RECORD
    root = tmp_path_factory.mktemp("hostile")
    paths = {"snapshot": root / "snapshot.json", "policy": root / "policy.json", "holdings": root / "holdings.json",
             "markets": root / "markets.toml", "history": root / "history.csv", "decision": root / "decision.json"}
    paths["snapshot"].write_text(_json(GOOD_SNAPSHOT))
    paths["policy"].write_text(_json(GOOD_POLICY))
    paths["policy_nonav"] = root / "policy-nonav.json"
    paths["policy_nonav"].write_text(_json({k: v for k, v in GOOD_POLICY.items() if k != "nav"}))
    paths["holdings"].write_text(_json(GOOD_HOLDINGS))
    paths["markets"].write_text(GOOD_MARKETS)
    paths["history"].write_text(GOOD_HISTORY)
    assert main(["allocate", str(paths["snapshot"]), str(paths["policy"]), "--holdings", str(paths["holdings"]),
                 "--out", str(paths["decision"])]) == 0
    _RECORD = paths["decision"]
    return paths


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, base: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = {**base, "out": tmp_path / "out.json", "folder": tmp_path / "folder"}
    paths["folder"].mkdir()
    capsys.readouterr()
    if case.kind == "args":
        argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in case.content]  # type: ignore[union-attr]
    else:
        bad = tmp_path / f"bad{case.suffix}"
        if callable(case.content):
            case.content(bad)
        elif isinstance(case.content, bytes):
            bad.write_bytes(case.content)
        elif isinstance(case.content, str):
            bad.write_text(case.content, encoding="utf-8")
        argv = _command(case, bad, paths)
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects the flag itself
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == case.code, (case.name, code, err[-600:])
    assert case.fragment in err, (case.name, err[-600:])
    assert "Traceback" not in err
    after = sorted(p.name for p in tmp_path.iterdir())
    assert after == before  # nothing written
