"""Shared fixtures (the builders themselves live in tests/factories.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import EXAMPLE


@pytest.fixture
def example_paths() -> dict[str, Path]:
    return {"snapshot": EXAMPLE / "snapshot.json", "policy": EXAMPLE / "policy.toml",
            "holdings": EXAMPLE / "holdings.json"}
