"""Input models (pydantic, strict): snapshots of opportunities, holdings, policies; loading JSON/TOML."""

from bondfolio.inputs.base import StrictModel, canonical_json, sha256_hex
from bondfolio.inputs.holdings import Holdings, load_holdings
from bondfolio.inputs.kinds import Kind, Tier
from bondfolio.inputs.policy import ConstraintSpec, Objective, Policy, SolverSettings, constraint_kinds, load_policy
from bondfolio.inputs.snapshot import (
    AsOf,
    ChainBlock,
    FactorRisk,
    Opportunity,
    RiskModel,
    Snapshot,
    load_snapshot,
)
from bondfolio.inputs.universe import Universe

__all__ = [
    "AsOf", "ChainBlock", "ConstraintSpec", "FactorRisk", "Holdings", "Kind", "Objective", "Opportunity",
    "Policy", "RiskModel", "Snapshot", "SolverSettings", "StrictModel", "Tier", "Universe", "canonical_json",
    "constraint_kinds", "load_holdings", "load_policy", "load_snapshot", "sha256_hex",
]
