"""Snapshot validation: every problem named by field and opportunity id."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bondfolio.errors import InputError
from bondfolio.inputs import Snapshot, load_snapshot
from tests.factories import EXAMPLE, opportunity, snapshot


def two() -> list[dict]:
    return [opportunity("a", 0.05), opportunity("b", 0.04)]


def test_example_snapshot_loads_with_factor_risk() -> None:
    snap = load_snapshot(EXAMPLE / "snapshot.json")
    assert len(snap.opportunities) >= 30
    assert {o.protocol for o in snap.opportunities} >= {"aave-v3", "compound-v3", "morpho-blue", "metamorpho",
                                                        "sky", "pendle", "rwa"}
    assert snap.risk.factors is not None and snap.risk.covariance is None
    assert snap.risk.factors.loadings.shape == (len(snap.opportunities), len(snap.risk.factors.names or ()))


def test_same_rules_for_path_text_and_mapping() -> None:
    raw = snapshot(two())
    a = load_snapshot(raw)
    b = load_snapshot(json.dumps(raw))
    assert a.model_dump_json() == b.model_dump_json()


def test_duplicate_ids_named() -> None:
    with pytest.raises(InputError, match=r"opportunity 'a' appears twice \(#1 and #2\)"):
        load_snapshot(snapshot([opportunity("a", 0.05), opportunity("a", 0.04)]))


def test_non_finite_number_named_by_id() -> None:
    text = json.dumps(snapshot(two())).replace('"apy": 0.04', '"apy": NaN')
    with pytest.raises(InputError, match=r"opportunity 'b': field 'opportunities.1.apy': Input should be a finite"):
        load_snapshot(text)


def test_non_finite_number_in_file_rejected(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(snapshot(two())).replace('"apy": 0.05', '"apy": Infinity'))
    with pytest.raises(InputError, match=r"opportunity 'a': field 'opportunities.0.apy': Input should be a finite"):
        load_snapshot(path)


def test_non_finite_matrix_entry_located() -> None:
    text = json.dumps(snapshot(two())).replace("0.0001", "NaN", 1)
    with pytest.raises(InputError, match=r"field 'risk.covariance': array holds non-finite numbers at \(0, 0\)"):
        load_snapshot(text)


def test_string_number_not_coerced() -> None:
    raw = snapshot([opportunity("a", "0.05"), opportunity("b", 0.04)])  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"opportunity 'a': field 'opportunities.0.apy'"):
        load_snapshot(raw)


def test_percent_instead_of_decimal_caught() -> None:
    with pytest.raises(InputError, match=r"opportunity 'a': field 'opportunities.0.apy': .*less than or equal to 10"):
        load_snapshot(snapshot([opportunity("a", 45.0), opportunity("b", 0.04)]))


def test_negative_liquidity_named() -> None:
    raw = snapshot([opportunity("a", 0.05, available_liquidity=-5.0), opportunity("b", 0.04)])
    with pytest.raises(InputError, match=r"opportunity 'a': field 'opportunities.0.available_liquidity'"):
        load_snapshot(raw)


def test_maturity_before_as_of_named() -> None:
    raw = snapshot([opportunity("pt", 0.08, kind="fixed", duration=0.1, maturity="2026-03-26T00:00:00Z"),
                    opportunity("b", 0.04)])
    with pytest.raises(InputError, match=r"opportunity 'pt' matures 2026-03-26T00:00:00\+00:00, not after the "
                                         r"snapshot time 2026-11-20T00:00:00\+00:00: drop it or refresh"):
        load_snapshot(raw)


def test_covariance_not_symmetric_named() -> None:
    cov = np.array([[1e-4, 2e-5], [1e-5, 1e-4]])
    with pytest.raises(InputError, match=r"risk.covariance is not symmetric: entry \((a, b|b, a)\)"):
        load_snapshot(snapshot(two(), cov=cov))


def test_covariance_not_psd_reports_eigenvalue_and_tolerance() -> None:
    cov = np.array([[1e-4, 2e-4], [2e-4, 1e-4]])  # eigenvalues 3e-4 and -1e-4
    with pytest.raises(InputError, match=r"most negative eigenvalue is -0.0001, below the tolerance -1e-10"):
        load_snapshot(snapshot(two(), cov=cov))


def test_covariance_dimension_mismatch() -> None:
    with pytest.raises(InputError, match=r"risk.covariance is 3 x 3, but there are 2 opportunities"):
        load_snapshot(snapshot(two(), cov=np.eye(3) * 1e-4))


def test_factor_dimension_mismatch_all_reported() -> None:
    factors = {"loadings": [[1.0], [1.0], [1.0]], "factor_covariance": [[1e-4, 0], [0, 1e-4]],
               "specific_variance": [1e-4]}
    with pytest.raises(InputError) as info:
        load_snapshot(snapshot(two(), factors=factors))
    text = str(info.value)
    assert "loadings has 3 rows, but there are 2 opportunities" in text
    assert "factor_covariance is 2 x 2, but loadings have 1 factors" in text
    assert "specific_variance has 1 entries" in text


def test_negative_specific_variance_named() -> None:
    factors = {"loadings": [[1.0], [0.5]], "factor_covariance": [[1e-4]], "specific_variance": [1e-5, -1e-6]}
    with pytest.raises(InputError, match=r"specific_variance of opportunity 'b' is -1e-06"):
        load_snapshot(snapshot(two(), factors=factors))


def test_exactly_one_risk_form() -> None:
    raw = snapshot(two())
    raw["risk"]["factors"] = {"loadings": [[1.0], [1.0]], "factor_covariance": [[1e-4]],
                              "specific_variance": [0.0, 0.0]}
    with pytest.raises(InputError, match="give exactly one of 'covariance'"):
        load_snapshot(raw)


def test_unknown_field_rejected_with_id() -> None:
    raw = snapshot([opportunity("a", 0.05, yeild=0.1), opportunity("b", 0.04)])
    with pytest.raises(InputError, match=r"opportunity 'a': field 'opportunities.0.yeild': Extra inputs"):
        load_snapshot(raw)


def test_hedge_tier_must_match_kind() -> None:
    raw = snapshot([opportunity("a", 0.05, kind="hedge"), opportunity("b", 0.04)])
    with pytest.raises(InputError, match="kind 'hedge' and tier 'core' disagree"):
        load_snapshot(raw)


def test_negative_duration_only_for_hedges() -> None:
    raw = snapshot([opportunity("a", 0.05, duration=-1.0), opportunity("b", 0.04)])
    with pytest.raises(InputError, match=r"duration -1\.0 is negative: only hedges"):
        load_snapshot(raw)


def test_several_problems_reported_together() -> None:
    raw = snapshot([opportunity("a", 0.05, risk_score=2.0), opportunity("b", 0.04, price=0.0)])
    with pytest.raises(InputError) as info:
        load_snapshot(raw)
    assert len(info.value.problems) == 2
    assert "opportunity 'a'" in info.value.problems[0] and "opportunity 'b'" in info.value.problems[1]


def test_missing_file_is_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match=r"file '.*nope.json' does not exist"):
        load_snapshot(tmp_path / "nope.json")


def test_json_schema_exports() -> None:
    schema = Snapshot.model_json_schema(by_alias=True)
    assert "opportunities" in schema["properties"] and "schema" in schema["properties"]
    assert schema["$defs"]["Opportunity"]["additionalProperties"] is False


def test_arrays_are_read_only() -> None:
    snap = load_snapshot(snapshot(two()))
    assert snap.risk.covariance is not None
    with pytest.raises(ValueError):
        snap.risk.covariance[0, 0] = 1.0
