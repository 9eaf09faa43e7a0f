"""``bondfolio mcp``: the engine as a Model Context Protocol server over stdio.

Built on the official SDK (``mcp`` >= 2.3: ``mcp.server.mcpserver.MCPServer``, the v2 name of FastMCP).

Tools: ``validate``, ``allocate``, ``explain``, ``diagnose``, ``stress``, ``replay``, ``diff``, ``plan``,
``rebalance_check``, ``snapshot``, ``schema``. Documents (snapshot, policy, holdings, scenarios, markets)
are accepted inline (a JSON object, JSON text or TOML text) or by path (a file path, or a
``bondfolio://example/treasury/<file>`` URI of the bundled example). Each tool's input schema is
derived from its typed signature, with every document parameter's object branch replaced by the
project's own JSON Schema (``bondfolio schema ...``); outputs are the project's typed models dumped as
structured JSON, with the tool's output schema derived from the model.

Every tool that produces a record (``allocate``, ``replay``, ``plan``, ``rebalance_check``,
``snapshot``) writes it atomically into the record folder (the ``record_dir`` argument, else
``$BONDFOLIO_MCP_DIR``, else a temporary folder made once per server) and returns a summary with its
path; the tools that read a record take that path. Nothing is written when a tool fails.

Failures are tool results with ``isError: true`` whose text is exactly what the command line prints
(``bondfolio <command>: error: <message>``, naming the field and id), plus a structured ``error``
object (type, exit code, problems, and for an infeasible policy the diagnosis). The snapshot tool takes
the RPC URL only from the environment (``BONDFOLIO_RPC_URL`` or ``BONDFOLIO_RPC_URL_<CHAIN>``) and never
echoes it: any URL, or its redacted host, is scrubbed from what it returns.

Only protocol messages go to stdout: the SDK diverts fd 1 to stderr while serving, logging goes to
stderr, and nothing here prints.
"""

import functools
import inspect
import json
import logging
import math
import os
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

import bondfolio
from bondfolio.errors import BondfolioError, InfeasibleError, InputError, SolverError, exit_code_for
from bondfolio.execution.gate import Verdict
from bondfolio.execution.plan import Plan
from bondfolio.files import write_atomic
from bondfolio.schemas import SCHEMAS
from bondfolio.schemas import schema as cli_schema
from bondfolio.solver.record import AllocationRow, CashRow, CheckReport, ConstraintRow, Metrics, SolverReport, Trade

__all__ = ["build_server", "main"]

log = logging.getLogger("bondfolio.mcp")

#: Formats served as schema resources and by the ``schema`` tool.
SCHEMA_NAMES: tuple[str, ...] = (*SCHEMAS, "verdict", "scenarios", "markets", "risk")

#: URI prefix of the bundled example's files.
EXAMPLE_URI = "bondfolio://example/treasury/"

#: Files of the bundled example served as resources (mime type by name).
EXAMPLE_FILES: dict[str, str] = {"snapshot.json": "application/json", "policy.toml": "application/toml",
                                 "holdings.json": "application/json", "gate.toml": "application/toml",
                                 "holdings-rebalanced.json": "application/json"}

#: Positions at or above this weight (target or current) appear in the allocate summary.
SUMMARY_MIN_WEIGHT = 5e-5

# ------------------------------------------------------------------------------------ documents
DocKind = Literal["snapshot", "policy", "holdings", "scenarios", "markets", "risk", "decision"]

_DOC_HELP = ("a file path (JSON; TOML by the .toml extension), a bondfolio://example/treasury/<file> URI, "
             "or the document itself: a JSON object, JSON text or TOML text")

Document = str | dict[str, Any]
"""A document parameter's runtime type: path or inline text (str), or an inline object."""


def example_dir() -> Path:
    """The bundled example (``$BONDFOLIO_EXAMPLE_DIR``, else ``examples/treasury`` of the source tree)."""
    env = os.environ.get("BONDFOLIO_EXAMPLE_DIR")
    if env:
        return Path(env)
    return Path(bondfolio.__file__).resolve().parent.parent / "examples" / "treasury"


def _document(value: Document | None, noun: str) -> Any:
    """What the project's loaders accept (a Path, JSON text or a mapping), from a tool argument.

    Fills the one gap of :func:`bondfolio.inputs.base.read_source`: TOML *text* (it reads TOML only from a
    file ending ``.toml``, and takes any string starting with ``[`` for JSON).
    """
    if value is None or isinstance(value, dict):
        return value
    text = value.strip()
    if text.startswith(EXAMPLE_URI):
        name = text.removeprefix(EXAMPLE_URI)
        if name not in EXAMPLE_FILES:
            raise InputError(f"{noun} '{text}': no such example file: choose one of {sorted(EXAMPLE_FILES)}")
        return example_dir() / name
    if text.startswith("{"):
        return text  # JSON text: the project's loader parses it and names the problems
    if "\n" not in text and not text.startswith("["):
        return Path(text)  # a path: the loader says "file '...' does not exist" when it does not
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{noun} is not valid TOML (nor a path or JSON): {exc}") from None


def _as_file(value: Document, noun: str, folder: Path) -> Path:
    """A path for loaders that read only files (MARKETS.toml, RISK.toml): inline documents go to a
    temporary file in ``folder`` (removed by the caller)."""
    doc = _document(value, noun)
    if isinstance(doc, Path):
        return doc
    data = json.loads(doc) if isinstance(doc, str) else doc
    path = folder / f"{noun}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ record folder
_default_dir: Path | None = None


def _record_dir(record_dir: str | None) -> Path:
    """The folder records are written into (not created until something is written)."""
    global _default_dir
    if record_dir:
        return Path(record_dir).expanduser().resolve()
    env = os.environ.get("BONDFOLIO_MCP_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if _default_dir is None:
        _default_dir = Path(tempfile.mkdtemp(prefix="bondfolio-mcp-"))
    return _default_dir


def _write(folder: Path, name: str, text: str) -> str:
    """Write ``text`` atomically (the CLI's :func:`write_atomic`) and return the absolute path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_atomic(path, text)
    return str(path)


def _dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------ output models
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ValidateResult(_Out):
    valid: bool = True
    opportunities: int
    risk: str
    """``factors`` or ``covariance``."""
    policy: str | None = None
    nav: float | None = None
    constraints: dict[str, int] | None = None
    """Rows each constraint creates, by label."""


class AllocateResult(_Out):
    record_path: str
    """The sealed decision record (pass it to explain, stress, replay, diff, plan)."""
    record_sha256: str
    policy: str
    as_of: str
    base_currency: str
    metrics: Metrics
    positions: list[AllocationRow]
    """Opportunities with a target or current weight of at least 0.005 % of NAV."""
    cash: CashRow
    trades: list[Trade]
    binding: list[ConstraintRow]
    """The binding constraint rows, with their duals."""
    check: CheckReport
    solver: SolverReport


class DiagnoseResult(_Out):
    feasible: bool
    policy: str
    diagnosis: dict[str, Any] | None
    """:class:`bondfolio.solver.diagnose.Diagnosis` (conflict, relaxation, alternatives); null if feasible."""
    text: str


class ReplayOut(_Out):
    ok: bool
    """The replay is identical or equivalent (the CLI's exit 0; otherwise exit 5)."""
    record_path: str | None
    """The new record (written only when ok)."""
    result: dict[str, Any]
    """:meth:`bondfolio.audit.replay.ReplayResult.to_dict`."""


class PlanResult(_Out):
    plan_path: str
    batch_paths: dict[str, str]
    """Transaction Builder batch file per chain with transactions."""
    clean: bool
    """Every leg ready and the reached weights pass the check (the CLI's exit 0; otherwise exit 8)."""
    plan: Plan


class RebalanceResult(_Out):
    verdict_path: str
    record_path: str | None
    """On act: the gated decision record."""
    plan_path: str | None
    """On act, when the holdings name their account (or safe is given): its plan."""
    verdict: Verdict
    """The sealed verdict with ``decision`` and ``plan`` left out (they are in the files above)."""


class SnapshotResult(_Out):
    snapshot_path: str
    opportunities: int
    chains: dict[str, dict[str, Any]]
    """Per chain: block, hash, timestamp, rounds, requests, calls, markets, multicall3."""


Json = dict[str, Any]


# ------------------------------------------------------------------------------------ tool machinery
def _jsonable(x: Any) -> Any:
    """JSON data with numpy scalars unwrapped and non-finite floats as null."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str | bytes):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class _Secrets:
    """Strings to scrub from a tool's output (the RPC URLs a snapshot read used)."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def scrub(self, text: str) -> str:
        for s in sorted(self.values, key=len, reverse=True):
            if s:
                text = text.replace(s, "<BONDFOLIO_RPC_URL>")
        return text


def _error_result(command: str, exc: BondfolioError, secrets: _Secrets) -> CallToolResult:
    message = secrets.scrub(str(exc))
    error: dict[str, Any] = {"command": command, "type": type(exc).__name__, "exit_code": exit_code_for(exc),
                             "message": message}
    if isinstance(exc, InputError):
        error["problems"] = [secrets.scrub(p) for p in exc.problems]
        error["source"] = exc.source
    if isinstance(exc, InfeasibleError):
        error["policy"] = exc.policy
        diagnosis = exc.diagnosis
        error["diagnosis"] = _jsonable(diagnosis.to_dict()) if hasattr(diagnosis, "to_dict") else None
    if isinstance(exc, SolverError):
        error["attempts"] = _jsonable(exc.attempts)
    return CallToolResult(content=[TextContent(type="text", text=f"bondfolio {command}: error: {message}")],
                          structured_content={"error": error}, is_error=True)


def _success_result(value: Any, secrets: _Secrets) -> CallToolResult:
    data = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else _jsonable(value)
    text = secrets.scrub(json.dumps(data, ensure_ascii=False, allow_nan=False))
    if secrets.values:
        data = json.loads(text)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


_DOC_PARAMS: dict[str, dict[str, str]] = {}
"""Per tool: document parameter -> schema it takes (for :func:`_document_schemas`)."""

_TOOLS: list[tuple[Callable[..., Any], dict[str, Any]]] = []


def tool(command: str, output: Any, *, docs: dict[str, str] | None = None, writes: bool = False,
         open_world: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a tool: ``fn`` returns a typed value (a model, or JSON data for ``output=Json``) or raises
    :class:`BondfolioError`; the wrapper turns either into a :class:`CallToolResult` (an error one with the
    CLI's text) and publishes ``output``'s JSON Schema as the tool's output schema."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> CallToolResult:
            secrets = _Secrets()
            if "_secrets" in inspect.signature(fn).parameters:
                kwargs["_secrets"] = secrets
            try:
                value = fn(**kwargs)
            except BondfolioError as exc:
                log.info("%s failed: %s", command, type(exc).__name__)
                return _error_result(command, exc, secrets)
            return _success_result(value, secrets)

        sig = inspect.signature(fn, eval_str=True)
        params = [p for name, p in sig.parameters.items() if name != "_secrets"]
        wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=Annotated[CallToolResult, output])
        _DOC_PARAMS[fn.__name__] = docs or {}
        _TOOLS.append((wrapper, {"annotations": ToolAnnotations(read_only_hint=not writes, destructive_hint=False,
                                                                idempotent_hint=True, open_world_hint=open_world)}))
        return fn

    return decorate


def _schema_for(which: str) -> dict[str, Any]:
    if which == "verdict":
        return Verdict.model_json_schema(by_alias=True)
    if which == "scenarios":
        from bondfolio.inputs.scenarios import ScenarioSettings

        return ScenarioSettings.model_json_schema(by_alias=True)
    if which == "risk":
        from bondfolio.adapters.risk import RiskPrior

        return RiskPrior.model_json_schema(by_alias=True)
    if which == "markets":  # MARKETS.toml: the head plus one table per protocol (no `bondfolio schema` for it yet)
        from typing import Union

        from pydantic import create_model

        from bondfolio.adapters.base import market_kinds
        from bondfolio.adapters.snapshot import _MarketsHead

        kinds = tuple(market_kinds().values())
        model = create_model("Markets", __base__=_MarketsHead,
                             markets=(list[Union[kinds]], Field(min_length=1)))  # type: ignore[valid-type]  # noqa: UP007
        return model.model_json_schema(by_alias=True)
    return cli_schema(which)


def _prefixed(schema: Any, prefix: str) -> Any:
    """``schema`` with every local ``$ref`` renamed into ``prefix``'s namespace."""
    if isinstance(schema, dict):
        out = {k: _prefixed(v, prefix) for k, v in schema.items() if k != "$defs"}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = f"#/$defs/{prefix}__{ref.removeprefix('#/$defs/')}"
        return out
    if isinstance(schema, list):
        return [_prefixed(v, prefix) for v in schema]
    return schema


def _document_schemas(parameters: dict[str, Any], docs: dict[str, str], mode: str) -> dict[str, Any]:
    """The tool's input schema with each document parameter as ``string | <the project's schema>``.

    ``full`` hoists the project's schema (and its ``$defs``, namespaced) into the tool's ``$defs``;
    ``compact`` gives the object branch only a pointer to the ``bondfolio://schema/<kind>`` resource.
    """
    params = json.loads(json.dumps(parameters))
    defs: dict[str, Any] = params.setdefault("$defs", {})
    for name, kind in docs.items():
        prop = params["properties"][name]
        nullable = name not in params.get("required", [])
        text = {"type": "string", "description": _DOC_HELP}
        if mode == "full":
            source = _schema_for(kind)
            title = f"{kind.capitalize()}Document"
            for key, sub in source.get("$defs", {}).items():
                defs[f"{title}__{key}"] = _prefixed(sub, title)
            defs[title] = _prefixed(source, title)
            obj: dict[str, Any] = {"$ref": f"#/$defs/{title}"}
        else:
            obj = {"type": "object", "description": f"the {kind} document; its JSON Schema is the resource "
                                                    f"bondfolio://schema/{kind}"}
        branches = [text, obj, *([{"type": "null"}] if nullable else [])]
        params["properties"][name] = {"anyOf": branches, "title": prop.get("title", name),
                                      "description": f"the {kind}: {_DOC_HELP}",
                                      **({"default": prop["default"]} if "default" in prop else {})}
    if not defs:
        params.pop("$defs")
    return params


def build_server(schema_mode: str | None = None) -> MCPServer:
    """The server with every tool and resource. ``schema_mode`` (``full`` | ``compact``; default
    ``$BONDFOLIO_MCP_SCHEMAS`` or ``full``) chooses how document parameters' schemas are published."""
    mode = schema_mode or os.environ.get("BONDFOLIO_MCP_SCHEMAS", "full")
    if mode not in ("full", "compact"):
        raise InputError(f"BONDFOLIO_MCP_SCHEMAS is '{mode}': choose full or compact")
    tools = []
    for fn, extra in _TOOLS:
        t = Tool.from_function(fn, name=fn.__name__, description=inspect.getdoc(fn), **extra)
        if t.output_schema is None:  # every tool publishes one; a model that cannot is a defect here
            raise RuntimeError(f"tool {t.name}: no output schema")
        t.parameters = _document_schemas(t.parameters, _DOC_PARAMS[fn.__name__], mode)
        tools.append(t)
    server = MCPServer("bondfolio", version=bondfolio.__version__, tools=tools,
                       log_level=os.environ.get("BONDFOLIO_MCP_LOG_LEVEL", "WARNING"),  # type: ignore[arg-type]
                       instructions=INSTRUCTIONS)
    _add_resources(server)
    return server


INSTRUCTIONS = (
    "bondfolio decides a treasury's target allocation over on-chain fixed-income markets. Documents "
    "(snapshot, policy TOML, holdings) go in by path, as bondfolio://example/treasury/<file> URIs, or inline. "
    "allocate writes a sealed decision record and returns its record_path; explain, stress, replay, diff and "
    "plan take that path. An infeasible policy is an error whose text and structured 'error.diagnosis' say "
    "which constraints conflict and the smallest relaxation; diagnose returns the same without failing. "
    "Nothing signs or sends a transaction."
)


def _add_resources(server: MCPServer) -> None:
    for which in SCHEMA_NAMES:
        def read_schema(_which: str = which) -> str:
            return json.dumps(_schema_for(_which), indent=2)

        server.resource(f"bondfolio://schema/{which}", name=f"schema-{which}", mime_type="application/schema+json",
                        description=f"JSON Schema of the {which} format (bondfolio schema {which})")(
            _no_args(read_schema))
    for name, mime in EXAMPLE_FILES.items():
        def read_example(_name: str = name) -> str:
            return (example_dir() / _name).read_text(encoding="utf-8")

        server.resource(f"{EXAMPLE_URI}{name}", name=f"example-treasury-{name}", mime_type=mime,
                        description=f"the bundled example treasury's {name} (usable as a tool argument by this URI)")(
            _no_args(read_example))


def _no_args(fn: Callable[[], str]) -> Callable[[], str]:
    """A zero-parameter function for a static resource (the SDK rejects handler parameters there)."""
    def read() -> str:
        return fn()

    read.__name__ = fn.__name__
    return read


# ------------------------------------------------------------------------------------ tools
DocArg = Annotated[Document, Field(description=_DOC_HELP)]
OptDocArg = Annotated[Document | None, Field(description=_DOC_HELP)]
RecordArg = Annotated[str, Field(description="path of a decision record (the record_path allocate returns)")]
DirArg = Annotated[str | None, Field(description="folder for the records written (default $BONDFOLIO_MCP_DIR, "
                                                 "else a temporary folder for this server)")]


@tool("validate", ValidateResult, docs={"snapshot": "snapshot", "policy": "policy", "holdings": "holdings"})
def validate(snapshot: DocArg, policy: OptDocArg = None, holdings: OptDocArg = None) -> ValidateResult:
    """Validate a snapshot, and optionally a policy and holdings against it (every field, id and reference),
    without solving. Returns the rows each constraint would create."""
    summary = bondfolio.validate(_document(snapshot, "snapshot"), _document(policy, "policy"),
                                 _document(holdings, "holdings"))
    return ValidateResult(**summary)


@tool("allocate", AllocateResult, docs={"snapshot": "snapshot", "policy": "policy", "holdings": "holdings"},
      writes=True)
def allocate(snapshot: DocArg, policy: DocArg, holdings: OptDocArg = None, embed_inputs: bool = True,
             record_dir: DirArg = None) -> AllocateResult:
    """Solve the policy on the snapshot: the verified target allocation, trades, metrics, binding constraints
    and the independent check. Writes the sealed decision record and returns its summary with record_path.
    An infeasible policy is an error carrying its diagnosis."""
    decision = bondfolio.allocate(_document(snapshot, "snapshot"), _document(policy, "policy"),
                                  _document(holdings, "holdings"), embed_inputs=embed_inputs)
    rec = decision.record
    path = _write(_record_dir(record_dir), f"decision-{rec.record_sha256[:16]}.json", decision.to_json())
    return AllocateResult(
        record_path=path, record_sha256=rec.record_sha256, policy=rec.policy, as_of=rec.as_of,
        base_currency=rec.base_currency, metrics=rec.metrics,
        positions=[a for a in rec.allocation
                   if max(abs(a.weight), abs(a.current_weight)) >= SUMMARY_MIN_WEIGHT],
        cash=rec.cash, trades=rec.trades, binding=[c for c in rec.constraints if c.binding and c.kind != "long_only"],
        check=rec.check, solver=rec.solver)


@tool("explain", Json, docs={"snapshot": "snapshot", "policy": "policy", "holdings": "holdings"})
def explain(record_path: RecordArg, snapshot: OptDocArg = None, policy: OptDocArg = None,
            holdings: OptDocArg = None, exact: bool = True) -> Json:
    """Explain a decision: what relaxing each binding constraint is worth (dual estimate and, with exact, a
    re-solve), each position's marginal yield against its costs, risk contributions per position and protocol.
    snapshot/policy/holdings are needed only for records written without embedded inputs."""
    from bondfolio.audit.explain import explain as run

    return run(record_path, _document(snapshot, "snapshot"), _document(policy, "policy"),
               _document(holdings, "holdings"), exact=exact).to_dict()


@tool("diagnose", DiagnoseResult, docs={"snapshot": "snapshot", "policy": "policy", "holdings": "holdings"})
def diagnose(snapshot: DocArg, policy: DocArg, holdings: OptDocArg = None) -> DiagnoseResult:
    """Why a policy is infeasible: an irreducible set of conflicting constraints, the smallest joint relaxation
    that restores feasibility, and each conflicting constraint's own smallest relaxation. A feasible policy
    returns feasible=true. Writes nothing."""
    try:
        decision = bondfolio.allocate(_document(snapshot, "snapshot"), _document(policy, "policy"),
                                      _document(holdings, "holdings"))
    except InfeasibleError as exc:
        d = exc.diagnosis
        return DiagnoseResult(feasible=False, policy=exc.policy or "", text=str(exc),
                              diagnosis=_jsonable(d.to_dict()) if hasattr(d, "to_dict") else None)
    return DiagnoseResult(feasible=True, policy=decision.policy.name, diagnosis=None,
                          text=f"policy '{decision.policy.name}' is feasible: allocate solves it")


@tool("stress", Json, docs={"snapshot": "snapshot", "scenarios": "scenarios"})
def stress(record_path: RecordArg, snapshot: OptDocArg = None, scenarios: OptDocArg = None,
           constraint: Annotated[str | None, Field(description="the cvar constraint whose scenarios to use")] = None,
           ) -> Json:
    """Losses of a decision's allocation in every stress scenario (joint failures, rate shocks, depegs, a freeze,
    samples), worst first, with expected loss and CVaR at 95 % and 99 %."""
    from bondfolio.audit.stress import stress as run

    return run(record_path, _document(snapshot, "snapshot"), _document(scenarios, "scenarios"), constraint).to_dict()


@tool("replay", ReplayOut, docs={"snapshot": "snapshot", "policy": "policy", "holdings": "holdings"}, writes=True)
def replay(record_path: RecordArg, snapshot: OptDocArg = None, policy: OptDocArg = None, holdings: OptDocArg = None,
           record_dir: DirArg = None) -> ReplayOut:
    """Verify a decision record's sha256, re-solve it from its own inputs and compare: identical, equivalent
    (within the stated tolerance) or different (with the differences). The new record is written only when
    the replay is ok."""
    from bondfolio.audit.replay import replay as run

    result = run(record_path, _document(snapshot, "snapshot"), _document(policy, "policy"),
                 _document(holdings, "holdings"))
    path = None
    if result.ok and result.record is not None:
        path = _write(_record_dir(record_dir), f"decision-{result.record.record_sha256[:16]}.json",
                      result.record.to_json())
    return ReplayOut(ok=result.ok, record_path=path, result=_jsonable(result.to_dict()))


@tool("diff", Json)
def diff(a: RecordArg, b: RecordArg,
         attribute: Annotated[bool, Field(description="re-solve each group of input changes alone")] = True,
         max_groups: Annotated[int, Field(ge=0, description="re-solve at most this many groups")] = 25) -> Json:
    """What changed between decision records a and b: input changes, allocation changes, and (with embedded
    inputs) each group of input changes applied alone to a and re-solved, ranked by how far it moves it."""
    from bondfolio.audit.diff import diff as run

    return run(a, b, attribute=attribute, max_groups=max_groups).to_dict()


@tool("plan", PlanResult, writes=True)
def plan(record_path: RecordArg,
         safe: Annotated[str, Field(description="the Safe that holds the positions and executes the batch")],
         multisend: Annotated[str | None, Field(description="MultiSendCallOnly address (a local node)")] = None,
         safe_version: Literal["1.3.0", "1.4.1"] = "1.4.1", record_dir: DirArg = None) -> PlanResult:
    """Turn a decision record into ordered legs and the unsigned Transaction Builder batch for the Safe. Writes
    the sealed plan and the batch files; a plan that is not clean (skipped or deferred legs, swap intents, a
    constraint the rounding breaks) is returned with clean=false and its reasons, not as an error. Read-only:
    nothing is signed or sent."""
    from bondfolio.execution.plan import build_plan

    p = build_plan(record_path, safe, multisend, safe_version)
    folder = _record_dir(record_dir)
    files = p.batch_files()
    stem = f"plan-{p.plan_sha256[:16]}"
    batch_paths = {chain: _write(folder, f"{stem}-batch-{chain}.json", _dump_json(batch))
                   for chain, batch in files.items()}
    plan_path = _write(folder, f"{stem}.json", p.to_json())
    return PlanResult(plan_path=plan_path, batch_paths=batch_paths, clean=p.clean, plan=p)


@tool("rebalance-check", RebalanceResult, docs={"snapshot": "snapshot", "policy": "policy", "holdings": "holdings"},
      writes=True)
def rebalance_check(snapshot: DocArg, policy: DocArg, holdings: DocArg,
                    last: Annotated[str | None, Field(description="the last decision record (for the cooldown)")]
                    = None,
                    safe: Annotated[str | None, Field(description="the Safe for the plan on act")] = None,
                    multisend: Annotated[str | None, Field(description="MultiSendCallOnly address")] = None,
                    record_dir: DirArg = None) -> RebalanceResult:
    """Act or hold: does the best gated move pay for itself over [rebalance] horizon_days (gas, slippage,
    trading costs), or does a must-act trigger fire? Writes the sealed verdict and, on act, the gated decision
    record and its plan."""
    from bondfolio.execution.gate import rebalance_check as run

    v = run(_document(snapshot, "snapshot"), _document(policy, "policy"), _document(holdings, "holdings"), last,
            safe, multisend)
    folder = _record_dir(record_dir)
    record_path = plan_path = None
    if v.decision is not None:
        record_path = _write(folder, f"decision-{str(v.decision.get('record_sha256', ''))[:16]}.json",
                             _dump_json(v.decision))
    if v.plan is not None:
        plan_path = _write(folder, f"plan-{str(v.plan.get('plan_sha256', ''))[:16]}.json", _dump_json(v.plan))
    verdict_path = _write(folder, f"verdict-{v.verdict_sha256[:16]}.json", v.to_json())
    return RebalanceResult(verdict_path=verdict_path, record_path=record_path, plan_path=plan_path,
                           verdict=v.model_copy(update={"decision": None, "plan": None}))


@tool("snapshot", SnapshotResult, docs={"markets": "markets", "risk": "risk"}, writes=True, open_world=True)
def snapshot(markets: Annotated[Document, Field(description="MARKETS.toml: " + _DOC_HELP)],
             block: Annotated[int | None, Field(ge=0, description="block number to pin (default: latest)")] = None,
             risk: Annotated[Document | None, Field(description="RISK.toml (factor prior volatilities): "
                                                                + _DOC_HELP)] = None,
             record_dir: DirArg = None, _secrets: _Secrets | None = None) -> SnapshotResult:
    """Read every market of MARKETS.toml at one pinned block per chain into a snapshot allocate accepts.
    Read-only chain reads; the RPC URL comes only from the server's environment (BONDFOLIO_RPC_URL or
    BONDFOLIO_RPC_URL_<CHAIN>) and is never echoed."""
    from bondfolio.adapters.chain import redact
    from bondfolio.adapters.risk import load_risk_prior
    from bondfolio.adapters.snapshot import load_markets, read_snapshot, resolve_rpc

    secrets = _secrets or _Secrets()
    with tempfile.TemporaryDirectory(prefix="bondfolio-mcp-in-") as tmp:
        markets_path = _as_file(markets, "markets", Path(tmp))
        risk_path = None if risk is None else _as_file(risk, "risk", Path(tmp))
        _, specs = load_markets(markets_path)
        rpc = resolve_rpc(sorted({s.chain for s in specs}), [], os.environ)
        for url in rpc.values():
            secrets.values += [url, redact(url)]
        snap, report = read_snapshot(markets_path, rpc, block, load_risk_prior(risk_path))
    text = snap.model_dump_json(indent=1, by_alias=True, exclude_none=True) + "\n"
    from bondfolio.inputs.base import sha256_hex

    path = _write(_record_dir(record_dir), f"snapshot-{sha256_hex(text)[:16]}.json", text)
    chains = {k: _jsonable(v) for k, v in report.items() if k != "details"}
    return SnapshotResult(snapshot_path=path, opportunities=len(snap.opportunities), chains=chains)


@tool("schema", Json)
def schema(which: Literal["snapshot", "holdings", "policy", "decision", "plan", "verdict", "scenarios", "markets",
                          "risk"]) -> Json:
    """The JSON Schema of a file format (also served as the resource bondfolio://schema/<which>)."""
    return _schema_for(which)



def main() -> None:
    """Serve over stdio until the client closes the stream (``bondfolio mcp``)."""
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("BONDFOLIO_MCP_LOG_LEVEL", "WARNING"))
    build_server().run("stdio")

