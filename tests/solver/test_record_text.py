"""The record's text: the fast paths (one dump shared by the seal and the writer, orjson's encoder) give
the seal json.dumps gives and a file that reads back to the record."""

from __future__ import annotations

import json

from bondfolio.solver.record import HASH_KEY, DecisionRecord, load_decision, record_sha256
from tests.factories import example_decision


def test_the_seal_is_the_one_json_dumps_gives() -> None:
    record = example_decision().record
    data = record.to_dict()
    assert record_sha256(data) == record_sha256(data, finite=True) == record.record_sha256  # json.dumps, orjson


def test_the_written_text_reads_back_to_the_record(tmp_path) -> None:
    record = example_decision().record
    text = record.to_json()
    assert text.endswith("}\n") and json.loads(text) == record.to_dict()
    assert text == record.to_json()  # the same dump, written again
    path = tmp_path / "d.json"
    path.write_text(text)
    assert load_decision(path).to_dict() == record.to_dict()


def test_a_copy_with_changes_writes_its_own_content() -> None:
    record = example_decision().record
    record.to_json()  # the dump is made and kept
    renamed = record.model_copy(update={"policy": "renamed"})
    assert isinstance(renamed, DecisionRecord)
    assert json.loads(renamed.to_json())["policy"] == "renamed"
    assert json.loads(renamed.to_json())[HASH_KEY] == record.record_sha256  # not resealed: load_decision refuses it
    assert json.loads(record.to_json())["policy"] == "dao-treasury"
