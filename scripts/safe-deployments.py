"""Regenerate bondfolio/execution/multisend_call_only.json from npm @safe-global/safe-deployments.

    npm ci && python scripts/safe-deployments.py

For each Safe version, every chain id the package lists for MultiSendCallOnly and the address of its
deployment type (canonical first, then eip155, then zksync, where a chain lists several).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "node_modules" / "@safe-global" / "safe-deployments" / "dist" / "assets"
OUT = ROOT / "bondfolio" / "execution" / "multisend_call_only.json"
VERSIONS = ("1.3.0", "1.4.1")
PREFERENCE = ("canonical", "eip155", "zksync")


def addresses(version: str) -> dict[str, str]:
    data = json.loads((ASSETS / f"v{version}" / "multi_send_call_only.json").read_text())
    out = {}
    for chain, kinds in data["networkAddresses"].items():
        listed = [kinds] if isinstance(kinds, str) else list(kinds)
        kind = next(k for k in PREFERENCE if k in listed)
        out[chain] = data["deployments"][kind]["address"]
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def main() -> None:
    package = json.loads((ASSETS.parent.parent / "package.json").read_text())
    table = {"source": f"npm @safe-global/safe-deployments {package['version']} (MIT), "
                       "dist/assets/v<version>/multi_send_call_only.json",
             "versions": {v: addresses(v) for v in VERSIONS}}
    OUT.write_text(json.dumps(table, indent=1) + "\n")
    print(f"{OUT}: {', '.join(f'{v}: {len(a)} chains' for v, a in table['versions'].items())}")


if __name__ == "__main__":
    main()
