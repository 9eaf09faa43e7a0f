"""OmitUnset: a named field left out of every dump when it is None (so documents that predate it keep
their canonical form and sha256), through pydantic's exclude_if."""

from __future__ import annotations

import json

import pytest

from bondfolio.inputs.base import OmitUnset, StrictModel, canonical_json
from bondfolio.inputs.snapshot import ChainBlock


class Part(StrictModel):
    y: int = 2


class Doc(OmitUnset, StrictModel):
    a: int = 1
    part: Part | None = None
    note: str | None = None

    omit_when_none = ("part",)


@pytest.mark.parametrize("doc, expected", [
    (Doc(), {"a": 1, "note": None}),                              # only the named field is left out
    (Doc(part=Part(), note="n"), {"a": 1, "part": {"y": 2}, "note": "n"}),
])
def test_named_none_fields_are_left_out_of_every_dump(doc: Doc, expected: dict) -> None:
    assert doc.model_dump() == expected
    assert doc.model_dump(mode="json") == expected
    assert json.loads(doc.model_dump_json()) == expected


def test_a_project_model_keeps_its_canonical_form() -> None:
    block = ChainBlock(chain_id=1, block_number=7)
    assert canonical_json(block.model_dump(mode="json")) == '{"block_hash":null,"block_number":7,"chain_id":1}'


def test_a_model_built_later_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="refers to a type not defined yet"):
        class Early(OmitUnset, StrictModel):
            later: Later | None = None  # noqa: F821

            omit_when_none = ("later",)
