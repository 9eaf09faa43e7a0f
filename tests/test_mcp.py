"""Drive ``bondfolio mcp`` over stdio in a subprocess with the SDK's own client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp_types import CallToolResult

from tests.factories import EXAMPLE, ROOT

PROJECT = ROOT
SAFE = "0x00000000000000000000000000000000000000A1"
TOOLS = {"validate", "allocate", "explain", "diagnose", "stress", "replay", "diff", "plan", "rebalance_check",
         "snapshot", "schema"}


def _env(out: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(PROJECT), "BONDFOLIO_MCP_DIR": str(out), "PATH": os.environ.get("PATH", ""),
            **extra}


def run(out: Path, body: Callable[[ClientSession], Awaitable[Any]], **env: str) -> Any:
    """Start the server as a subprocess (``python -m bondfolio mcp``) and run ``body`` on an initialized session."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "bondfolio", "mcp"], env=_env(out, **env),
                                   cwd=str(PROJECT))

    async def main() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)

    return asyncio.run(main())


def text_of(result: CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def policy_text(**replace: str) -> str:
    text = (EXAMPLE / "policy.toml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new, 1)
    return text


# ------------------------------------------------------------------------------------ tests
def test_lists_tools_with_schemas_and_resources(tmp_path: Path) -> None:
    async def body(s: ClientSession) -> None:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == TOOLS
        for t in tools.values():
            assert t.output_schema is not None and t.output_schema["type"] == "object", t.name
            assert t.description
        # document parameters: a string (path or inline text) or the project's own schema
        policy = tools["allocate"].input_schema["properties"]["policy"]
        ref = next(b["$ref"] for b in policy["anyOf"] if "$ref" in b)
        defs = tools["allocate"].input_schema["$defs"]
        assert defs[ref.removeprefix("#/$defs/")]["title"] == "Policy"
        assert "constraints" in defs[ref.removeprefix("#/$defs/")]["properties"]
        assert tools["allocate"].input_schema["required"] == ["snapshot", "policy"]
        assert tools["allocate"].output_schema["properties"]["record_path"]["type"] == "string"
        assert tools["plan"].input_schema["properties"]["safe"]["type"] == "string"
        assert tools["allocate"].annotations.read_only_hint is False
        assert tools["explain"].annotations.read_only_hint is True

        uris = {str(r.uri) for r in (await s.list_resources()).resources}
        for which in ("snapshot", "policy", "holdings", "decision", "plan", "verdict"):
            assert f"bondfolio://schema/{which}" in uris
        assert "bondfolio://example/treasury/policy.toml" in uris
        verdict = json.loads((await s.read_resource("bondfolio://schema/verdict")).contents[0].text)
        assert verdict["title"] == "Verdict"
        policy_toml = (await s.read_resource("bondfolio://example/treasury/policy.toml")).contents[0].text
        assert policy_toml == (EXAMPLE / "policy.toml").read_text()

    run(tmp_path, body)


def test_allocate_explain_plan(tmp_path: Path) -> None:
    out = tmp_path / "records"

    async def body(s: ClientSession) -> None:
        r = await s.call_tool("allocate", {"snapshot": str(EXAMPLE / "snapshot.json"),
                                           "policy": str(EXAMPLE / "policy.toml"),
                                           "holdings": str(EXAMPLE / "holdings.json")})
        assert not r.is_error, text_of(r)
        a = r.structured_content
        path = Path(a["record_path"])
        assert path.is_file() and path.parent == out
        record = json.loads(path.read_text())
        assert record["record_sha256"] == a["record_sha256"]
        assert a["policy"] == "dao-treasury" and a["base_currency"] == "USD"
        assert a["metrics"]["nav"] == pytest.approx(50_000_000)
        assert a["check"]["passed"] is True and a["solver"]["status"] == "optimal"
        assert a["binding"] and all(row["binding"] for row in a["binding"])
        weights = sum(p["weight"] for p in a["positions"]) + a["cash"]["weight"]
        assert weights == pytest.approx(1.0, abs=1e-6)
        assert json.loads(text_of(r)) == a  # the text block mirrors the structured content

        e = await s.call_tool("explain", {"record_path": a["record_path"]})
        assert not e.is_error, text_of(e)
        assert e.structured_content["policy"] == "dao-treasury"
        assert e.structured_content["binding"] and e.structured_content["positions"]

        p = await s.call_tool("plan", {"record_path": a["record_path"], "safe": SAFE})
        assert not p.is_error, text_of(p)
        result = p.structured_content
        assert Path(result["plan_path"]).is_file()
        # the example snapshot has no execution data: every trade is skipped, with its reason
        assert result["clean"] is False and result["batch_paths"] == {}
        plan = result["plan"]
        assert plan["decision_sha256"] == a["record_sha256"] and plan["safe"] == SAFE
        assert plan["skipped"] and all("no execution data" in s_["reason"] for s_ in plan["skipped"])
        assert {s_["id"] for s_ in plan["skipped"]} == {t["id"] for t in a["trades"]}

    run(out, body)


def test_inline_documents_and_the_other_tools(tmp_path: Path) -> None:
    async def body(s: ClientSession) -> None:
        snapshot = json.loads((EXAMPLE / "snapshot.json").read_text())  # an inline object
        policy = (EXAMPLE / "policy.toml").read_text()                  # inline TOML text
        holdings = (EXAMPLE / "holdings.json").read_text()              # inline JSON text
        v = await s.call_tool("validate", {"snapshot": snapshot, "policy": policy, "holdings": holdings})
        assert not v.is_error, text_of(v)
        assert v.structured_content["valid"] and v.structured_content["opportunities"] == len(snapshot["opportunities"])

        a = await s.call_tool("allocate", {"snapshot": snapshot, "policy": policy, "holdings": holdings})
        assert not a.is_error, text_of(a)
        path = a.structured_content["record_path"]

        rp = await s.call_tool("replay", {"record_path": path})
        assert not rp.is_error, text_of(rp)
        assert rp.structured_content["ok"] and rp.structured_content["result"]["verdict"] in ("identical",
                                                                                               "equivalent")
        st = await s.call_tool("stress", {"record_path": path})
        assert not st.is_error, text_of(st)
        assert st.structured_content["scenarios"] and "summary" in st.structured_content
        d = await s.call_tool("diff", {"a": path, "b": rp.structured_content["record_path"], "attribute": False})
        assert not d.is_error, text_of(d)

        g = await s.call_tool("rebalance_check", {"snapshot": "bondfolio://example/treasury/snapshot.json",
                                                  "policy": "bondfolio://example/treasury/gate.toml",
                                                  "holdings": "bondfolio://example/treasury/holdings.json"})
        assert not g.is_error, text_of(g)
        verdict = g.structured_content
        assert verdict["verdict"]["verdict"] == "act" and Path(verdict["verdict_path"]).is_file()
        assert Path(verdict["record_path"]).is_file() and verdict["verdict"]["decision"] is None

        sc = await s.call_tool("schema", {"which": "policy"})
        assert not sc.is_error and sc.structured_content["title"] == "Policy"

        dg = await s.call_tool("diagnose", {"snapshot": snapshot, "policy": policy})
        assert not dg.is_error and dg.structured_content["feasible"] is True

    run(tmp_path, body)


def test_bad_input_is_a_tool_error_naming_the_field(tmp_path: Path) -> None:
    out = tmp_path / "records"

    async def body(s: ClientSession) -> None:
        # max_weight's max is bounded to [-10, 10] by the model (max = 2 is accepted: hedges may lever)
        bad = policy_text(**{"max = 0.12 ": "max = 20 "})
        r = await s.call_tool("allocate", {"snapshot": str(EXAMPLE / "snapshot.json"), "policy": bad})
        assert r.is_error
        text = text_of(r)
        assert text.startswith("bondfolio allocate: error: policy 'dao-treasury': ")
        assert "constraint #2 (max_weight): field 'max': Input should be less than or equal to 10" in text
        err = r.structured_content["error"]
        assert err["type"] == "InputError" and err["exit_code"] == 2
        assert err["problems"] == ["field 'constraints': constraint #2 (max_weight): field 'max': "
                                   "Input should be less than or equal to 10"]

        # an id the snapshot does not list, named as the CLI names it
        typo = policy_text(**{"max = 0.12 ": 'max = 0.12\nlimits = { "aave-v3-eth-usdcx" = 0.1 } '})
        r = await s.call_tool("validate", {"snapshot": str(EXAMPLE / "snapshot.json"), "policy": typo})
        assert r.is_error
        assert text_of(r) == ("bondfolio validate: error: constraint 'max_weight{max=0.12}': limits names "
                              "'aave-v3-eth-usdcx', which is not an opportunity of the snapshot")

        # a snapshot field out of range names the opportunity by id
        snap = json.loads((EXAMPLE / "snapshot.json").read_text())
        snap["opportunities"][0]["risk_score"] = 2
        oid = snap["opportunities"][0]["id"]
        r = await s.call_tool("allocate", {"snapshot": snap, "policy": str(EXAMPLE / "policy.toml")})
        assert r.is_error and f"opportunity '{oid}'" in text_of(r) and "risk_score" in text_of(r)

        r = await s.call_tool("allocate", {"snapshot": "no/such/snapshot.json", "policy": str(EXAMPLE / "policy.toml")})
        assert r.is_error
        assert text_of(r) == "bondfolio allocate: error: file 'no/such/snapshot.json' does not exist: check the path"

    run(out, body)
    assert not out.exists()  # nothing is written on failure


def test_infeasible_policy_returns_its_diagnosis(tmp_path: Path) -> None:
    out = tmp_path / "records"
    infeasible = policy_text(**{"target = 0.15": "target = 3.0"})

    async def body(s: ClientSession) -> None:
        r = await s.call_tool("allocate", {"snapshot": str(EXAMPLE / "snapshot.json"), "policy": infeasible,
                                           "holdings": str(EXAMPLE / "holdings.json")})
        assert r.is_error
        text = text_of(r)
        assert text.startswith("bondfolio allocate: error: policy 'dao-treasury' is infeasible")
        assert "Traceback" not in text
        assert ("diagnosis: duration{target=3.0, tolerance=0.05} cannot hold even alone (with only the built-in "
                "budget and long-only rules)") in text
        assert "lower the duration{target=3.0, tolerance=0.05} floor on portfolio from 2.95 y to" in text
        err = r.structured_content["error"]
        assert err["type"] == "InfeasibleError" and err["exit_code"] == 3
        diagnosis = err["diagnosis"]
        assert diagnosis["conflict"] == ["duration{target=3.0, tolerance=0.05}"]
        assert diagnosis["relaxation"][0]["side"] == "lower" and diagnosis["relaxation"][0]["unit"] == "years"

        d = await s.call_tool("diagnose", {"snapshot": str(EXAMPLE / "snapshot.json"), "policy": infeasible})
        assert not d.is_error, text_of(d)
        assert d.structured_content["feasible"] is False
        assert d.structured_content["diagnosis"]["conflict"] == ["duration{target=3.0, tolerance=0.05}"]

    run(out, body)
    assert not out.exists()


MARKETS = ('[chains.mainnet]\nchain_id = 1\n\n[[markets]]\nprotocol = "erc4626"\nchain = "mainnet"\n'
           'vault = "0xa3931d71877C0E7a3148CB7Eb4463524FEc27fbD"\nid = "sky-susds"\n')


def test_snapshot_reads_the_rpc_url_only_from_the_environment_and_never_echoes_it(tmp_path: Path) -> None:
    async def without(s: ClientSession) -> None:
        r = await s.call_tool("snapshot", {"markets": MARKETS})
        assert r.is_error
        assert text_of(r).startswith("bondfolio snapshot: error: no RPC URL for chain 'mainnet'")
        assert "BONDFOLIO_RPC_URL" in text_of(r)
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert not any("rpc" in name for name in tools["snapshot"].input_schema["properties"])  # no URL argument

    run(tmp_path, without)

    secret = "http://127.0.0.1:9/v2/SECRETKEY123"  # port 9 (discard): refused at once

    async def refused(s: ClientSession) -> None:
        r = await s.call_tool("snapshot", {"markets": MARKETS})
        assert r.is_error
        blob = text_of(r) + json.dumps(r.structured_content)
        assert r.structured_content["error"]["type"] == "ChainError"
        assert "SECRETKEY123" not in blob and "127.0.0.1" not in blob
        assert "<BONDFOLIO_RPC_URL>" in blob or "chain" in blob

    run(tmp_path, refused, BONDFOLIO_RPC_URL=secret)
    assert not (tmp_path / "records").exists()


def test_stdout_carries_only_protocol_messages(tmp_path: Path) -> None:
    """Raw JSON-RPC over the pipe: every stdout line is a JSON-RPC message (also the NOTES' worked exchange)."""
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "allocate", "arguments": {"snapshot": "bondfolio://example/treasury/snapshot.json",
                                                      "policy": "bondfolio://example/treasury/policy.toml",
                                                      "holdings": "bondfolio://example/treasury/holdings.json"}}},
    ]
    proc = subprocess.Popen([sys.executable, "-m", "bondfolio", "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=PROJECT,
                            env={**os.environ, **_env(tmp_path / "r")})
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        for m in msgs:  # stdin stays open until the answer arrives: EOF ends the session (and cancels the call)
            proc.stdin.write(json.dumps(m) + "\n")
            proc.stdin.flush()
            while "id" in m and not any(x.get("id") == m["id"] for x in lines):
                line = proc.stdout.readline()
                assert line, "the server closed stdout"
                lines.append(json.loads(line))  # raises on any non-JSON line
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    lines += [json.loads(line) for line in proc.stdout.read().splitlines()]
    assert all(m["jsonrpc"] == "2.0" for m in lines)
    result = next(m for m in lines if m.get("id") == 2)["result"]
    assert result.get("isError") in (None, False)
    assert Path(result["structuredContent"]["record_path"]).is_file()
    if os.environ.get("BONDFOLIO_MCP_EXCHANGE"):
        Path(os.environ["BONDFOLIO_MCP_EXCHANGE"]).write_text(json.dumps({"request": msgs[2], "response": result},
                                                                          indent=2))
