"""Write the example stablecoin-treasury snapshot (``snapshot.json``) and holdings (``holdings.json``).

ILLUSTRATIVE NUMBERS: yields, liquidity, TVL, risk scores and the factor risk model are plausible for
late 2026 but invented; block numbers and hashes are made up. Run ``python make_snapshot.py`` to
rebuild the files byte for byte.

Risk model (annual, decimal returns), factor form ``Sigma = B F B' + diag(d)``:

- ``rate``: the USD short-rate level, 100 bp/yr volatility. Floating positions load +0.25 (their
  accrual follows rates); fixed positions load ``0.25 - duration`` (price falls by duration x move).
- ``depeg:<coin>``: one factor per stablecoin (USDC, USDT, DAI/USDS, USDe, GHO, PYUSD); loading 1.
- ``protocol:<name>``: one factor per protocol family; loading 1.
- specific variance from the risk score: ``(0.002 + 0.03 * risk_score) ** 2``.
Factors are independent except a 0.5 correlation between USDe depeg and the Pendle protocol factor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
AS_OF = "2026-11-20T00:00:00Z"
CHAINS = {"ethereum": (1, 23_850_000), "base": (8453, 38_400_000), "arbitrum": (42161, 402_000_000)}
M = 1e6

# id, protocol, chain, asset, kind, apy, duration, maturity, liquidity, tvl, risk, tier, price, delay, tags
ROWS = [
    ("aave-v3-eth-usdc", "aave-v3", "ethereum", "USDC", "floating", 0.0452, 0.0, None, 380, 4100, 0.08, "core", 1.0, 0, ["oracle:chainlink", "issuer:circle"]),
    ("aave-v3-eth-usdt", "aave-v3", "ethereum", "USDT", "floating", 0.0498, 0.0, None, 290, 3600, 0.10, "core", 1.0, 0, ["oracle:chainlink", "issuer:tether"]),
    ("aave-v3-eth-usds", "aave-v3", "ethereum", "USDS", "floating", 0.0531, 0.0, None, 95, 820, 0.12, "core", 1.0, 0, ["oracle:chainlink", "issuer:sky"]),
    ("aave-v3-eth-gho", "aave-v3", "ethereum", "GHO", "floating", 0.0575, 0.0, None, 40, 310, 0.18, "yield", 1.0, 0, ["oracle:chainlink", "issuer:aave"]),
    ("aave-v3-base-usdc", "aave-v3", "base", "USDC", "floating", 0.0488, 0.0, None, 60, 520, 0.12, "core", 1.0, 0, ["oracle:chainlink", "issuer:circle", "bridge:native-cctp"]),
    ("aave-v3-arb-usdc", "aave-v3", "arbitrum", "USDC", "floating", 0.0471, 0.0, None, 55, 430, 0.12, "core", 1.0, 0, ["oracle:chainlink", "issuer:circle", "bridge:native-cctp"]),
    ("compound-v3-eth-usdc", "compound-v3", "ethereum", "USDC", "floating", 0.0466, 0.0, None, 180, 1900, 0.09, "core", 1.0, 0, ["oracle:chainlink", "issuer:circle"]),
    ("compound-v3-eth-usdt", "compound-v3", "ethereum", "USDT", "floating", 0.0512, 0.0, None, 70, 760, 0.11, "core", 1.0, 0, ["oracle:chainlink", "issuer:tether"]),
    ("compound-v3-base-usdc", "compound-v3", "base", "USDC", "floating", 0.0505, 0.0, None, 30, 240, 0.13, "yield", 1.0, 0, ["oracle:chainlink", "issuer:circle", "bridge:native-cctp"]),
    ("compound-v3-arb-usdc", "compound-v3", "arbitrum", "USDC", "floating", 0.0493, 0.0, None, 25, 210, 0.13, "yield", 1.0, 0, ["oracle:chainlink", "issuer:circle", "bridge:native-cctp"]),
    ("morpho-blue-wsteth-usdc-86", "morpho-blue", "ethereum", "USDC", "floating", 0.0561, 0.0, None, 45, 380, 0.20, "yield", 1.0, 0, ["oracle:chainlink", "issuer:circle", "collateral:wsteth"]),
    ("morpho-blue-wbtc-usdc-86", "morpho-blue", "ethereum", "USDC", "floating", 0.0549, 0.0, None, 38, 300, 0.20, "yield", 1.0, 0, ["oracle:chainlink", "issuer:circle", "collateral:wbtc"]),
    ("morpho-blue-susde-dai-915", "morpho-blue", "ethereum", "DAI", "floating", 0.0688, 0.0, None, 22, 160, 0.32, "yield", 1.0, 0, ["oracle:redstone", "issuer:sky", "collateral:susde"]),
    ("morpho-blue-base-cbbtc-usdc-86", "morpho-blue", "base", "USDC", "floating", 0.0597, 0.0, None, 30, 210, 0.24, "yield", 1.0, 0, ["oracle:chainlink", "issuer:circle", "collateral:cbbtc", "bridge:native-cctp"]),
    ("metamorpho-steakhouse-usdc", "metamorpho", "ethereum", "USDC", "vault", 0.0538, 0.0, None, 120, 900, 0.14, "core", 1.02, 0, ["oracle:chainlink", "issuer:circle", "curator:steakhouse"]),
    ("metamorpho-gauntlet-usdc-prime", "metamorpho", "ethereum", "USDC", "vault", 0.0529, 0.0, None, 90, 650, 0.13, "core", 1.01, 0, ["oracle:chainlink", "issuer:circle", "curator:gauntlet"]),
    ("metamorpho-re7-usdt", "metamorpho", "ethereum", "USDT", "vault", 0.0612, 0.0, None, 25, 140, 0.26, "yield", 1.03, 0, ["oracle:redstone", "issuer:tether", "curator:re7"]),
    ("sky-sdai", "sky", "ethereum", "DAI", "vault", 0.0500, 0.0, None, 600, 2400, 0.07, "core", 1.17, 0, ["issuer:sky"]),
    ("sky-susds", "sky", "ethereum", "USDS", "vault", 0.0525, 0.0, None, 900, 4300, 0.08, "core", 1.06, 0, ["issuer:sky"]),
    ("pendle-pt-susde-2026-12-25", "pendle", "ethereum", "USDe", "fixed", 0.0845, 35 / 365, "2026-12-25T00:00:00Z", 28, 310, 0.34, "yield", None, 0, ["oracle:pendle-twap", "issuer:ethena"]),
    ("pendle-pt-susde-2027-03-26", "pendle", "ethereum", "USDe", "fixed", 0.0912, 126 / 365, "2027-03-26T00:00:00Z", 35, 420, 0.34, "yield", None, 0, ["oracle:pendle-twap", "issuer:ethena"]),
    ("pendle-pt-usde-2027-06-25", "pendle", "ethereum", "USDe", "fixed", 0.0868, 217 / 365, "2027-06-25T00:00:00Z", 18, 230, 0.32, "yield", None, 0, ["oracle:pendle-twap", "issuer:ethena"]),
    ("pendle-pt-ausdc-2027-06-25", "pendle", "ethereum", "USDC", "fixed", 0.0579, 217 / 365, "2027-06-25T00:00:00Z", 14, 95, 0.20, "yield", None, 0, ["oracle:pendle-twap", "issuer:circle"]),
    ("pendle-pt-susds-2027-03-26", "pendle", "ethereum", "USDS", "fixed", 0.0606, 126 / 365, "2027-03-26T00:00:00Z", 12, 80, 0.22, "yield", None, 0, ["oracle:pendle-twap", "issuer:sky"]),
    ("pendle-pt-gho-2027-09-24", "pendle", "ethereum", "GHO", "fixed", 0.0704, 308 / 365, "2027-09-24T00:00:00Z", 6, 45, 0.28, "yield", None, 0, ["oracle:pendle-twap", "issuer:aave"]),
    ("pendle-pt-arb-susde-2027-03-26", "pendle", "arbitrum", "USDe", "fixed", 0.0941, 126 / 365, "2027-03-26T00:00:00Z", 8, 70, 0.38, "yield", None, 0, ["oracle:pendle-twap", "issuer:ethena", "bridge:layerzero"]),
    ("tbill-buidl", "rwa", "ethereum", "USD", "fixed", 0.0418, 0.08, None, None, 2500, 0.05, "core", 1.0, 1, ["issuer:blackrock"]),
    ("tbill-ustb", "rwa", "ethereum", "USD", "fixed", 0.0425, 0.12, None, None, 780, 0.06, "core", 10.71, 1, ["issuer:superstate"]),
    ("tbill-usyc", "rwa", "ethereum", "USD", "fixed", 0.0431, 0.10, None, None, 1200, 0.07, "core", 1.09, 1, ["issuer:hashnote"]),
    ("tbill-ousg", "rwa", "ethereum", "USD", "fixed", 0.0409, 0.15, None, None, 690, 0.06, "core", 111.2, 2, ["issuer:ondo"]),
    ("tbill-bib01", "rwa", "ethereum", "USD", "fixed", 0.0402, 0.25, None, None, 160, 0.09, "core", 106.4, 3, ["issuer:backed"]),
    ("fluid-eth-usdc", "fluid", "ethereum", "USDC", "floating", 0.0583, 0.0, None, 50, 420, 0.22, "yield", 1.0, 0, ["oracle:chainlink", "issuer:circle"]),
    ("spark-eth-usdc", "spark", "ethereum", "USDC", "floating", 0.0501, 0.0, None, 110, 950, 0.11, "core", 1.0, 0, ["oracle:chainlink", "issuer:circle"]),
]

COINS = {"USDC": "USDC", "USDT": "USDT", "DAI": "DAI/USDS", "USDS": "DAI/USDS", "USDe": "USDe", "GHO": "GHO"}
COIN_VOL = {"USDC": 0.004, "USDT": 0.008, "DAI/USDS": 0.006, "USDe": 0.02, "GHO": 0.012}
PROTOCOL_VOL = {"aave-v3": 0.006, "compound-v3": 0.007, "morpho-blue": 0.010, "metamorpho": 0.009, "sky": 0.005,
                "pendle": 0.015, "rwa": 0.003, "fluid": 0.010, "spark": 0.006}
RATE_VOL = 0.01


def pt_price(apy: float, years: float) -> float:
    """Price of a principal token paying 1 at maturity, at implied APY ``apy``."""
    return round((1 + apy) ** (-years), 6)


def build() -> tuple[dict, dict]:
    opportunities = []
    for (oid, protocol, chain, asset, kind, apy, duration, maturity, liq, tvl, risk, tier, price, delay,
         tags) in ROWS:
        opp = {
            "id": oid, "protocol": protocol, "chain": chain, "asset": asset, "kind": kind, "apy": apy,
            "duration": round(duration, 6), "risk_score": risk, "tier": tier,
            "price": pt_price(apy, duration) if price is None else price,
            "withdrawal_delay_days": delay, "tvl": tvl * M, "tags": tags,
        }
        if maturity:
            opp["maturity"] = maturity
        if liq is not None:
            opp["available_liquidity"] = liq * M
        opportunities.append(opp)

    factor_names = ["rate"] + [f"depeg:{c}" for c in COIN_VOL] + [f"protocol:{p}" for p in PROTOCOL_VOL]
    col = {name: j for j, name in enumerate(factor_names)}
    n, k = len(ROWS), len(factor_names)
    loadings = np.zeros((n, k))
    specific = np.zeros(n)
    for i, row in enumerate(ROWS):
        _, protocol, _, asset, kind, _, duration, *_rest = row
        risk = row[10]
        loadings[i, col["rate"]] = 0.25 if kind in ("floating", "vault") else round(0.25 - duration, 6)
        if asset in COINS:
            loadings[i, col[f"depeg:{COINS[asset]}"]] = 1.0
        loadings[i, col[f"protocol:{protocol}"]] = 1.0
        specific[i] = round((0.002 + 0.03 * risk) ** 2, 10)
    vols = np.array([RATE_VOL, *COIN_VOL.values(), *PROTOCOL_VOL.values()])
    corr = np.eye(k)
    a, b = col["depeg:USDe"], col["protocol:pendle"]
    corr[a, b] = corr[b, a] = 0.5
    fcov = np.round(np.outer(vols, vols) * corr, 12)

    def block_hash(chain: str) -> str:
        return "0x" + hashlib.sha256(f"illustrative {chain} {CHAINS[chain][1]}".encode()).hexdigest()

    snapshot = {
        "schema": "bondfolio.snapshot/1",
        "description": "Illustrative stablecoin treasury opportunity set (invented but plausible numbers; "
                       "made by examples/treasury/make_snapshot.py)",
        "as_of": {"timestamp": AS_OF, "chains": {
            c: {"chain_id": cid, "block_number": blk, "block_hash": block_hash(c)} for c, (cid, blk) in CHAINS.items()
        }},
        "base_currency": "USD",
        "opportunities": opportunities,
        "risk": {"factors": {"names": factor_names, "loadings": loadings.tolist(),
                             "factor_covariance": fcov.tolist(), "specific_variance": specific.tolist()}},
        # shared dependencies that can fail (annual probability, loss given failure); protocols not
        # named get the score rule's (5 % x their riskiest market's score, 50 % loss)
        "failure": {"sources": [
            {"group": "oracle:redstone", "probability": 0.004, "loss_given_failure": 0.25},
            {"group": "oracle:pendle-twap", "probability": 0.003, "loss_given_failure": 0.2},
            {"group": "issuer:ethena", "probability": 0.01, "loss_given_failure": 0.3},
            {"group": "bridge:layerzero", "probability": 0.005, "loss_given_failure": 0.6},
            {"group": "bridge:native-cctp", "probability": 0.001, "loss_given_failure": 0.5},
            {"group": "collateral:susde", "probability": 0.008, "loss_given_failure": 0.15},
        ]},
    }
    holdings = {
        "schema": "bondfolio.holdings/1",
        "unit": "base",
        "positions": {"aave-v3-eth-usdc": 14e6, "compound-v3-eth-usdc": 8e6, "sky-sdai": 10e6,
                      "tbill-buidl": 9e6, "pendle-pt-susde-2026-12-25": 4e6},
        "cash": 5e6,
    }
    return snapshot, holdings


def main() -> None:
    snapshot, holdings = build()
    (HERE / "snapshot.json").write_text(json.dumps(snapshot, indent=1) + "\n")
    (HERE / "holdings.json").write_text(json.dumps(holdings, indent=1) + "\n")


if __name__ == "__main__":
    main()
