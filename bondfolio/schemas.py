"""The JSON Schemas of bondfolio's file formats (``bondfolio schema``)."""

from __future__ import annotations

from typing import Any

from bondfolio.errors import InputError

__all__ = ["SCHEMAS", "schema"]

#: Formats ``bondfolio schema`` prints.
SCHEMAS: tuple[str, ...] = ("snapshot", "holdings", "policy", "decision", "plan")


def schema(which: str) -> dict[str, Any]:
    """JSON Schema of a file format (:data:`SCHEMAS`); the policy's constraints are a union tagged by
    ``kind``."""
    from typing import Annotated, Union

    from pydantic import Field, create_model

    from bondfolio.inputs import Holdings, Policy, Snapshot, constraint_kinds

    if which == "snapshot":
        return Snapshot.model_json_schema(by_alias=True)
    if which == "holdings":
        return Holdings.model_json_schema(by_alias=True)
    if which == "decision":
        from bondfolio.solver.record import DecisionRecord

        return DecisionRecord.model_json_schema(by_alias=True)
    if which == "plan":
        from bondfolio.execution.plan import Plan

        return Plan.model_json_schema(by_alias=True)
    if which != "policy":
        raise InputError(f"no schema '{which}': choose one of {list(SCHEMAS)}")
    kinds = tuple(constraint_kinds().values())
    union = Annotated[Union[kinds], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
    model = create_model("Policy", __base__=Policy, constraints=(tuple[union, ...], ()))
    return model.model_json_schema()
