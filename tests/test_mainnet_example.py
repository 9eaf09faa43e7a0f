"""The mainnet example's MARKETS.toml names real addresses, and each one is checked here against the npm
address-book package its ``# source:`` comment names, in that package's files under node_modules/ (package.json
pins them; ``npm ci`` installs them). No address goes unchecked: one that no registry package publishes is in
:data:`NOT_IN_REGISTRIES` with the origin its comment gives, and a Morpho Blue market id (which no package
publishes) is recomputed from the market parameters a package does publish."""

from __future__ import annotations

import json
import re
import tomllib
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from bondfolio.adapters.snapshot import load_markets
from bondfolio.execution.safe import multisend_call_only_address
from tests.factories import ROOT

MARKETS = ROOT / "examples" / "mainnet" / "MARKETS.toml"
NODE_MODULES = ROOT / "node_modules"
ADDRESS = "(0x[0-9a-fA-F]{40})"


def within(scope: str, key: str, end: str) -> str:
    """A pattern for ``key`` after ``scope`` and before the next ``end``: a symbol inside one block of a file."""
    return f"{scope}(?:(?!{end})[\\s\\S])*?{key}"


def solidity_constant(library: str, name: str) -> str:
    """``name``'s value in ``library`` of an address-book .sol file (``X = 0x..`` or ``X = IPool(0x..)``)."""
    return within(f"library {library} \\{{", f"\\b{name} = (?:\\w+\\()?{ADDRESS}", "\\n\\}")


class Source(NamedTuple):
    market: str
    field: str
    package: str
    file: str
    symbol: str
    """As the MARKETS.toml comment spells it: ``# source: npm <package>@<version> <file>:<symbol>``."""
    pattern: str
    """A regex over the file's text whose one group is the address; it must match exactly once."""


AAVE = "@bgd-labs/aave-address-book"
AAVE_SOL = "src/AaveV3Ethereum.sol"
AAVE_POOL = solidity_constant("AaveV3Ethereum", "POOL")
MORPHO_TS = "@morpho-org/morpho-ts"
MORPHO_TS_FILE = "lib/cjs/addresses.js"
MORPHO_TEST = "@morpho-org/morpho-test"
ETH_MAINNET_REGISTRY = "\\[chain_js_1\\.ChainId\\.EthMainnet\\]: \\{"
NEXT_REGISTRY = "\\[chain_js_1\\.ChainId\\."


def aave_reserve(market: str, symbol: str) -> list[Source]:
    return [Source(market, "pool", AAVE, AAVE_SOL, "AaveV3Ethereum.POOL", AAVE_POOL),
            Source(market, "asset", AAVE, AAVE_SOL, f"AaveV3EthereumAssets.{symbol}_UNDERLYING",
                   solidity_constant("AaveV3EthereumAssets", f"{symbol}_UNDERLYING"))]


def morpho_singleton(market: str) -> Source:
    return Source(market, "morpho", MORPHO_TS, MORPHO_TS_FILE, "_addressesRegistry[EthMainnet].morpho",
                  within(ETH_MAINNET_REGISTRY, f'\\n\\s*morpho: "{ADDRESS}"', NEXT_REGISTRY))


SOURCES: list[Source] = [
    *aave_reserve("aave-v3-eth-usdc", "USDC"),
    *aave_reserve("aave-v3-eth-usdt", "USDT"),
    *aave_reserve("aave-v3-eth-dai", "DAI"),
    *aave_reserve("aave-v3-eth-gho", "GHO"),
    *aave_reserve("aave-v3-eth-usds", "USDS"),
    Source("compound-v3-eth-usdc", "comet", "@compound-finance/comet-extension", "dist/Extensions.js",
           'extensions[comet_migrator].supportedMarkets."1_USDC_<comet>"',
           within("id: 'comet_migrator'", f"supportedMarkets: \\{{[^}}]*?'1_USDC_{ADDRESS}'", "id: '")),
    morpho_singleton("morpho-blue-wsteth-usdc-86"),
    morpho_singleton("morpho-blue-wbtc-usdc-86"),
    Source("metamorpho-steakhouse-usdc", "vault", MORPHO_TEST, "lib/cjs/fixtures/vaults.js",
           "vaults[EthMainnet].steakUsdc.address",
           within("\\[blue_sdk_1\\.ChainId\\.EthMainnet\\]: \\{",
                  f'\\bsteakUsdc: new blue_sdk_1\\.VaultConfig\\(\\{{\\s*address: "{ADDRESS}"',
                  "\\[blue_sdk_1\\.ChainId\\.")),
    Source("sky-sdai", "vault", AAVE, AAVE_SOL, "AaveV3EthereumAssets.sDAI_UNDERLYING",
           solidity_constant("AaveV3EthereumAssets", "sDAI_UNDERLYING")),
    Source("sky-susds", "vault", "@beefyfinance/blockchain-addressbook",
           "dist/address-book/ethereum/tokens/tokens.js", "sUSDS.address",
           within("\\n\\tsUSDS: \\{", f'address: "{ADDRESS}",\\s*chainId: 1,', "\\n\\t\\}")),
]


class MorphoMarket(NamedTuple):
    market: str
    fixture: str
    """The key of ``markets[ChainId.EthMainnet]`` in @morpho-org/morpho-test's fixtures: its MarketParams."""


MORPHO_MARKETS_FILE = "lib/cjs/fixtures/markets.js"
MORPHO_MARKETS: list[MorphoMarket] = [
    MorphoMarket("morpho-blue-wsteth-usdc-86", "usdc_wstEth"),
    MorphoMarket("morpho-blue-wbtc-usdc-86", "usdc_wbtc"),
]

NOT_IN_REGISTRIES: dict[tuple[str, str], tuple[str, str]] = {
    # (market, field): (address, origin as the MARKETS.toml comment states it)
    ("compound-v3-eth-usdt", "comet"): ("0x3Afdc9BCA9213A35503b077a6072F3D0d5AB0840",
                                        "github compound-finance/comet deployments/mainnet/usdt/roots.json:comet"),
}

SAFE_DEPLOYMENTS = "@safe-global/safe-deployments"
SAFE_FILE = "dist/assets/v1.4.1/multi_send_call_only.json"

COMMENT_NPM = re.compile(r"^# source: npm (@?[^@\s]+)@(\S+) ([^:\s]+):(\S+)")
COMMENT_ELSEWHERE = re.compile(r"^# source: NOT IN THE REGISTRIES: (.+)$")
HEX_VALUE = re.compile(r"^0x(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")


def tables() -> dict[str, dict[str, Any]]:
    markets = tomllib.loads(MARKETS.read_text())["markets"]
    by_id = {m["id"]: m for m in markets}
    assert len(by_id) == len(markets), "two markets share an id"
    return by_id


def source_comments() -> dict[str, list[str]]:
    """Each market's ``# source:`` lines: those in the comment block right above its ``[[markets]]``."""
    out: dict[str, list[str]] = {}
    block: list[str] = []
    current: list[str] | None = None
    for line in MARKETS.read_text().splitlines():
        if line.startswith("#"):
            block.append(line)
        elif line.strip() == "[[markets]]":
            current = [c for c in block if c.startswith("# source:")]
            block = []
        elif line.strip() == "":
            block = []
        elif current is not None and (found := re.match(r'^id = "([^"]+)"', line)):
            out[found.group(1)] = current
            current = None
    return out


def package_text(package: str, file: str) -> str:
    path = NODE_MODULES / package / file
    assert path.is_file(), f"{path} is missing: run npm ci (package.json pins {package})"
    return path.read_text()


def installed_version(package: str) -> str:
    return str(json.loads(package_text(package, "package.json"))["version"])


def the_one_match(pattern: str, text: str, what: str) -> str:
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{what}: expected one match, found {len(found)}"
    return str(found[0])


def test_the_file_is_one_bondfolio_reads() -> None:
    chains, specs = load_markets(MARKETS)
    assert chains["ethereum"].chain_id == 1
    assert {s.chain for s in specs} == {"ethereum"}
    assert [s.id for s in specs] == list(tables())


def test_every_address_has_a_source_or_is_allowlisted() -> None:
    markets = tables()
    hex_fields = {(mid, key) for mid, table in markets.items() for key, value in table.items()
                  if isinstance(value, str) and HEX_VALUE.match(value)}
    sourced = {(s.market, s.field) for s in SOURCES}
    derived = {(m.market, "market_id") for m in MORPHO_MARKETS}
    allowed = set(NOT_IN_REGISTRIES)
    assert not sourced & allowed and not derived & allowed and not sourced & derived
    assert hex_fields == sourced | derived | allowed  # nothing unchecked, nothing stale
    assert len(sourced) == len(SOURCES)


def test_addresses_are_checksummed() -> None:
    for mid, table in tables().items():
        for key, value in table.items():
            if isinstance(value, str) and HEX_VALUE.match(value) and len(value) == 42:
                assert value == to_checksum_address(value), f"{mid}.{key} is not in its EIP-55 form"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: f"{s.market}.{s.field}")
def test_address_is_the_one_its_package_publishes(source: Source) -> None:
    text = package_text(source.package, source.file)
    published = the_one_match(source.pattern, text, f"{source.package}/{source.file}:{source.symbol}")
    assert tables()[source.market][source.field].lower() == published.lower()


def morpho_registry_address(name: str) -> str:
    text = package_text(MORPHO_TS, MORPHO_TS_FILE)
    pattern = within(ETH_MAINNET_REGISTRY, f'\\n\\s*"?{re.escape(name)}"?: "{ADDRESS}"', NEXT_REGISTRY)
    return the_one_match(pattern, text, f"{MORPHO_TS}/{MORPHO_TS_FILE}:EthMainnet.{name}")


def fixture_address(value: str, imported: set[str]) -> str:
    """A MarketParams field: a literal address, or a name destructured from the mainnet address registry."""
    literal = re.fullmatch(f'"{ADDRESS}"', value)
    if literal:
        return literal.group(1)
    assert value in imported, f"{value} is not one of the fixture's mainnet registry names"
    return morpho_registry_address(value)


@pytest.mark.parametrize("entry", MORPHO_MARKETS, ids=lambda m: m.market)
def test_morpho_market_id_is_the_hash_of_published_params(entry: MorphoMarket) -> None:
    text = package_text(MORPHO_TEST, MORPHO_MARKETS_FILE)
    names = re.search(r"const \{([^}]*)\} = blue_sdk_1\.addressesRegistry\[blue_sdk_1\.ChainId\.EthMainnet\];", text)
    assert names, "the fixture no longer destructures the mainnet registry"
    imported = {n.strip() for n in names.group(1).split(",")}
    mainnet = text[text.index("[blue_sdk_1.ChainId.EthMainnet]: {"):]
    mainnet = mainnet[:mainnet.index("[blue_sdk_1.ChainId.", 1)]
    body = the_one_match(f"\\b{entry.fixture}: new blue_sdk_1\\.MarketParams\\(\\{{([^}}]*)\\}}\\)", mainnet,
                         f"{MORPHO_TEST}/{MORPHO_MARKETS_FILE}:markets[EthMainnet].{entry.fixture}")
    fields = dict(re.findall(r"(?m)^\s*(\w+): (.+),\s*$", body))
    lltv_units = re.fullmatch(r'\(0, viem_1\.parseUnits\)\("([0-9.]+)", (\d+)\)', fields["lltv"])
    lltv = (int(Decimal(lltv_units.group(1)) * 10 ** int(lltv_units.group(2))) if lltv_units
            else int(fields["lltv"].removesuffix("n")))
    params = [fixture_address(fields[k], imported) for k in ("loanToken", "collateralToken", "oracle", "irm")]
    market_id = "0x" + keccak(encode(["address", "address", "address", "address", "uint256"],
                                     [*params, lltv])).hex()
    assert tables()[entry.market]["market_id"].lower() == market_id


def test_allowlisted_addresses_are_pinned_with_their_stated_origin() -> None:
    markets, comments = tables(), source_comments()
    for (mid, field), (address, origin) in NOT_IN_REGISTRIES.items():
        assert markets[mid][field] == address, f"{mid}.{field} changed: find it a source, then update the allowlist"
        stated = [m.group(1) for c in comments[mid] if (m := COMMENT_ELSEWHERE.match(c))]
        assert stated == [origin]


def test_source_comments_name_the_checked_files_at_the_pinned_versions() -> None:
    pins = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    comments = source_comments()
    assert set(comments) == set(tables())
    expected: dict[str, set[tuple[str, str, str]]] = {}
    for s in SOURCES:
        expected.setdefault(s.market, set()).add((s.package, s.file, s.symbol))
    for m in MORPHO_MARKETS:
        expected.setdefault(m.market, set()).add((MORPHO_TEST, MORPHO_MARKETS_FILE, f"markets[EthMainnet].{m.fixture}"))
    for mid, lines in comments.items():
        assert lines, f"{mid} has no '# source:' comment"
        named = set()
        for line in lines:
            npm = COMMENT_NPM.match(line)
            if npm:
                package, version, file, symbol = npm.groups()
                assert version == pins[package] == installed_version(package), f"{mid}: {package} version"
                named.add((package, file, symbol))
            else:
                assert COMMENT_ELSEWHERE.match(line), f"{mid}: unreadable source comment {line!r}"
        assert named == expected.get(mid, set()), mid


def test_the_multisend_noted_for_the_plan_is_safe_deployments_one() -> None:
    text = MARKETS.read_text()
    noted = re.search(f'multisend_call_only = "{ADDRESS}"', text)
    assert noted
    data = json.loads(package_text(SAFE_DEPLOYMENTS, SAFE_FILE))
    kinds = data["networkAddresses"]["1"]
    assert kinds == "canonical"
    assert noted.group(1) == data["deployments"][kinds]["address"] == multisend_call_only_address(1)
    version = json.loads((ROOT / "package.json").read_text())["devDependencies"][SAFE_DEPLOYMENTS]
    assert f"npm {SAFE_DEPLOYMENTS}@{version} {SAFE_FILE}:" in text
    assert installed_version(SAFE_DEPLOYMENTS) == version


def test_patterns_reject_a_changed_address() -> None:
    # the checks compare values, not mere presence: a file where the symbol holds another address fails
    source = SOURCES[0]
    text = package_text(source.package, source.file)
    published = the_one_match(source.pattern, text, source.symbol)
    altered = the_one_match(source.pattern, text.replace(published, "0x" + "12" * 20), source.symbol)
    assert altered.lower() != tables()[source.market][source.field].lower()


def test_pendle_router_in_the_template_is_the_published_one() -> None:
    # the commented Pendle table's router: mainnet's PendleRouterV4 as @pendle/core-v2 publishes it
    line = next(line for line in MARKETS.read_text().splitlines() if line.startswith("# router = "))
    address = line.split('"')[1]
    m = COMMENT_NPM.match(line[line.index("# source:"):])
    assert m is not None and (m.group(1), m.group(2), m.group(3), m.group(4)) == (
        "@pendle/core-v2", "6.11.0", "deployments/1-core.json", "router")
    package = json.loads((NODE_MODULES / "@pendle" / "core-v2" / "package.json").read_text())
    assert package["version"] == "6.11.0"
    published = json.loads((NODE_MODULES / "@pendle" / "core-v2" / "deployments" / "1-core.json").read_text())
    assert address == to_checksum_address(published["router"]) == published["router"]
