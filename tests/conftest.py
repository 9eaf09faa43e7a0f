"""Shared fixtures (the builders themselves live in tests/factories.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chain import chain as chain
from tests.factories import EXAMPLE, example_decision


@pytest.fixture
def example_paths() -> dict[str, Path]:
    return {"snapshot": EXAMPLE / "snapshot.json", "policy": EXAMPLE / "policy.toml",
            "holdings": EXAMPLE / "holdings.json"}


@pytest.fixture(scope="session")
def example_record() -> dict[str, Any]:
    """The example treasury's decision record (allocated once per test session)."""
    return example_decision().to_dict()
