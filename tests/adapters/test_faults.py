"""Faults and bad input: retries with backoff, clear errors naming the market, no secrets, no mixed blocks."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bondfolio.adapters.chain import ChainClient, redact
from bondfolio.adapters.holdings import read_holdings
from bondfolio.adapters.snapshot import read_snapshot, resolve_rpc
from bondfolio.cli import main
from bondfolio.errors import ChainError, InputError, MarketError
from tests.chain import Chain, reverting

NOBODY = "0x000000000000000000000000000000000000dEaD"


class FaultyProxy:
    """An HTTP server on 127.0.0.1 forwarding to anvil, misbehaving for the first ``failures`` requests."""

    def __init__(self, upstream: str, mode: str, failures: int) -> None:
        self.upstream, self.mode, self.failures, self.seen = upstream, mode, failures, 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.seen += 1
                mode = proxy.mode if proxy.seen <= proxy.failures else "pass"
                if mode == "garbage":
                    return self._reply(200, b"<html>not json</html>")
                if mode.isdigit():
                    return self._reply(int(mode), b'{"error": "busy"}')
                if mode == "429-after":
                    return self._reply(429, b'{"error": "slow down"}', {"Retry-After": "0.05"})
                if mode == "timeout":
                    time.sleep(1.5)  # past the client's timeout
                    return self._reply(200, b"{}")
                if mode == "away":
                    self.close_connection = True  # the node goes away mid-read, then comes back
                    return None
                request = urllib.request.Request(proxy.upstream, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    data = response.read()
                if mode == "cut":
                    return self._reply(200, data, cut=True)
                if mode in ("reorder", "drop", "wrong-id", "duplicate"):
                    reply = json.loads(data)
                    if isinstance(reply, list):
                        if mode == "reorder":
                            reply = reply[::-1]
                        elif mode == "drop":
                            reply = reply[:-1]
                        elif mode == "duplicate":
                            reply = [*reply[:-1], reply[0]]
                        else:
                            reply = [{**r, "id": r["id"] + 1000} for r in reply]
                    elif mode == "wrong-id":
                        reply = {**reply, "id": 999}
                    data = json.dumps(reply).encode()
                return self._reply(200, data)

            def _reply(self, status: int, data: bytes, headers: dict[str, str] | None = None,
                       cut: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/secret-api-key-123"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def markets_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "markets.toml"
    path.write_text(body)
    return path


@pytest.fixture(scope="module")
def clean_snapshot(chain: Chain) -> dict:
    snapshot, _ = read_snapshot(chain.markets, {"devnet": chain.node.url})
    return snapshot.model_dump(mode="json")


FAULTS = ["429", "429-after", "500", "502", "503", "garbage", "timeout", "cut", "away", "drop", "wrong-id",
          "duplicate"]


@pytest.mark.parametrize("mode", FAULTS)
def test_transient_faults_are_retried_to_the_same_snapshot(chain: Chain, mode: str, clean_snapshot: dict) -> None:
    # each fault on the first two requests: retried within the bounds, and the snapshot is the one a clean
    # read gives, byte for byte (same pinned block)
    with FaultyProxy(chain.node.url, mode, failures=2) as proxy:
        snapshot, report = read_snapshot(chain.markets, {"devnet": proxy.url}, backoff=0.01, timeout=0.5)
    assert snapshot.model_dump(mode="json") == clean_snapshot
    assert report["devnet"]["requests"] == 5 + 2  # the two failed attempts, then the normal five


def test_a_reordered_batch_reply_is_read_by_id(chain: Chain, clean_snapshot: dict) -> None:
    with FaultyProxy(chain.node.url, "reorder", failures=10**6) as proxy:
        snapshot, report = read_snapshot(chain.markets, {"devnet": proxy.url}, backoff=0.01)
    assert snapshot.model_dump(mode="json") == clean_snapshot
    assert report["devnet"]["requests"] == 5  # nothing to retry


@pytest.mark.parametrize("mode", ["timeout", "drop", "wrong-id", "away", "cut"])
def test_persistent_faults_end_in_a_chain_error(chain: Chain, mode: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with FaultyProxy(chain.node.url, mode, failures=10**6) as proxy, pytest.raises(ChainError, match=r"no good "
                                                                                   r"answer after 2 attempts"):
        read_snapshot(chain.markets, {"devnet": proxy.url}, retries=1, backoff=0.01, timeout=0.5)


def test_persistent_fault_fails_clearly_without_secrets(chain: Chain) -> None:
    with FaultyProxy(chain.node.url, "500", failures=10**6) as proxy, \
            pytest.raises(ChainError, match=r"no good answer after 3 attempts \(last: HTTP 500\)") as info:
        read_snapshot(chain.markets, {"devnet": proxy.url}, retries=2, backoff=0.01)
    assert "secret-api-key-123" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_redact_keeps_host_only() -> None:
    assert redact("https://user:pw@eth.example.com:8545/v3/KEY?x=1") == "https://eth.example.com:8545/…"
    assert redact("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


def test_wrong_chain_id(chain: Chain, tmp_path: Path) -> None:
    body = chain.markets.read_text().replace("chain_id = 31337", "chain_id = 1")
    assert "chain_id = 1\n" in body
    with pytest.raises(ChainError, match=r"the node is on chain id 31337, but chain 'devnet' expects 1"):
        read_snapshot(markets_file(tmp_path, body), {"devnet": chain.node.url})


def test_address_without_code_names_the_market(chain: Chain, tmp_path: Path) -> None:
    body = f'[[markets]]\nprotocol = "compound-v3"\nchain = "devnet"\ncomet = "{NOBODY}"\nid = "ghost"\n'
    with pytest.raises(MarketError, match=r"compound-v3 market ghost on devnet: reading the base token .* returned "
                                          r"no data \(no contract at that address\?\)"):
        read_snapshot(markets_file(tmp_path, body), {"devnet": chain.node.url})


def test_unknown_morpho_market(chain: Chain, tmp_path: Path) -> None:
    body = (f'[[markets]]\nprotocol = "morpho-blue"\nchain = "devnet"\nmorpho = "{chain.world.morpho}"\n'
            f'market_id = "0x{"ab" * 32}"\n')
    with pytest.raises(MarketError, match=r"market id 0xabab.* does not exist on Morpho"):
        read_snapshot(markets_file(tmp_path, body), {"devnet": chain.node.url})


def test_unknown_aave_asset(chain: Chain, tmp_path: Path) -> None:
    body = (f'[[markets]]\nprotocol = "aave-v3"\nchain = "devnet"\npool = "{chain.world.aave.pool.address}"\n'
            f'asset = "{NOBODY}"\n')
    with pytest.raises(MarketError, match=r"is not a reserve of pool"):
        read_snapshot(markets_file(tmp_path, body), {"devnet": chain.node.url})


def test_expired_pendle_market_is_redeem_only(chain: Chain, tmp_path: Path) -> None:
    # past its expiry a PT earns nothing more and redeems 1:1 for the asset: read, not refused
    with reverting(chain):
        chain.node.rpc("evm_increaseTime", 100 * 86400)
        chain.node.rpc("evm_mine")
        snapshot, _ = read_snapshot(chain.markets, {"devnet": chain.node.url})
    o = next(o for o in snapshot.opportunities if o.id == "pendle-pt-devnet-sdai-90d")
    assert (o.apy, o.duration, o.price, o.depositable, o.rate_curve) == (0.0, 0.0, 1.0, False, None)


def test_bad_markets_file_reports_every_problem(chain: Chain, tmp_path: Path) -> None:
    body = ('[[markets]]\nprotocol = "aave-v4"\nchain = "devnet"\n\n'
            '[[markets]]\nprotocol = "erc4626"\nchain = "devnet"\nvault = "0x12"\n')
    with pytest.raises(InputError) as info:
        read_snapshot(markets_file(tmp_path, body), {"devnet": chain.node.url})
    assert "market #1 has protocol 'aave-v4': use one of" in str(info.value)
    assert "market #2 (erc4626): field 'vault': address '0x12' is not a 0x-prefixed 20-byte hex address" in str(
        info.value)


def test_reorg_while_reading_is_detected(chain: Chain) -> None:
    with reverting(chain):
        before = chain.node.rpc("evm_snapshot")
        chain.node.rpc("evm_mine")
        client = ChainClient(chain.node.url, "devnet")
        pinned = client.pin()
        chain.node.rpc("evm_revert", before)
        chain.node.rpc("evm_increaseTime", 60)
        chain.node.rpc("evm_mine")  # a different block at the same height
        with pytest.raises(ChainError, match=rf"block {pinned.number} changed while it was read \(reorg\)"):
            client.verify()


def test_rpc_url_resolution() -> None:
    env = {"BONDFOLIO_RPC_URL": "http://general", "BONDFOLIO_RPC_URL_BASE_SEPOLIA": "http://base"}
    assert resolve_rpc(["ethereum", "base-sepolia"], [], env) == {"ethereum": "http://general",
                                                                  "base-sepolia": "http://base"}
    assert resolve_rpc(["ethereum"], ["ethereum=http://flag"], env) == {"ethereum": "http://flag"}
    with pytest.raises(InputError, match=r"no RPC URL for chain 'ethereum': pass --rpc URL"):
        resolve_rpc(["ethereum"], [], {})


def test_hundred_markets_in_three_round_trips(chain: Chain, tmp_path: Path) -> None:
    tables = chain.markets.read_text().split("[[markets]]")[1:]
    body = []
    for i in range(100):
        table = tables[i % len(tables)]
        table = "\n".join(line for line in table.splitlines() if not line.startswith("id ="))
        body.append(f"[[markets]]{table}\nid = \"m{i:03d}\"\n")
    snapshot, report = read_snapshot(markets_file(tmp_path, "\n".join(body)), {"devnet": chain.node.url})
    assert len(snapshot.opportunities) == 100
    assert report["devnet"]["rounds"] == 3 and report["devnet"]["requests"] == 5


def test_cli_snapshot_then_allocate(chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "snapshot.json"
    assert main(["snapshot", "--rpc", chain.node.url, "--markets", str(chain.markets), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["as_of"]["chains"]["devnet"]["block_number"] == chain.world.block
    assert "rounds" in capsys.readouterr().out
    policy = tmp_path / "policy.toml"
    policy.write_text('name = "devnet"\nnav = 1000000\n[objective]\nrisk_aversion = 10.0\n\n'
                      '[[constraints]]\nkind = "max_weight"\nmax = 0.4\n\n'
                      '[[constraints]]\nkind = "liquidity_share"\nmax_share = 0.1\n'
                      'select = { protocol = ["aave-v3", "compound-v3", "morpho-blue"] }\n')
    decision = tmp_path / "decision.json"
    assert main(["allocate", str(out), str(policy), "--out", str(decision)]) == 0
    assert json.loads(decision.read_text())["check"]["passed"] is True


def test_cli_snapshot_failure_writes_nothing(chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "snapshot.json"
    with FaultyProxy(chain.node.url, "500", failures=10**6) as proxy:
        code = main(["snapshot", "--rpc", proxy.url, "--markets", str(chain.markets), "--out", str(out)])
    assert code == 6
    assert not out.exists()
    err = capsys.readouterr().err
    assert "secret-api-key-123" not in err and "no good answer" in err


def test_no_private_key_option() -> None:
    with pytest.raises(SystemExit):
        main(["snapshot", "--private-key", "0x01", "--markets", "m.toml", "--out", "o.json"])


def test_vault_window_too_short_is_an_error(chain: Chain, tmp_path: Path) -> None:
    body = f'[[markets]]\nprotocol = "erc4626"\nchain = "devnet"\nvault = "{chain.world.vault}"\nlookback_blocks = 1\n'
    with pytest.raises(MarketError, match=r"erc4626 market .* the share-price window is \d+ s, under 3600 s: too short "
                                          r"to annualize; raise lookback_blocks"):
        read_snapshot(markets_file(tmp_path, body), {"devnet": chain.node.url}, block=chain.world.block)


@pytest.fixture(scope="module")
def clean_holdings(chain: Chain) -> tuple[dict, dict]:
    holdings, snapshot = read_holdings(chain.markets, {"devnet": chain.node.url}, chain.w3.eth.accounts[0])
    assert any(v > 0 for v in holdings.positions.values())  # the account the world supplied from
    return holdings.model_dump(mode="json"), snapshot.model_dump(mode="json")


@pytest.mark.parametrize("mode", FAULTS)
def test_holdings_retry_transient_faults_to_the_same_holdings(chain: Chain, mode: str,
                                                              clean_holdings: tuple[dict, dict]) -> None:
    with FaultyProxy(chain.node.url, mode, failures=2) as proxy:
        holdings, snapshot = read_holdings(chain.markets, {"devnet": proxy.url}, chain.w3.eth.accounts[0],
                                           backoff=0.01, timeout=0.5)
    assert (holdings.model_dump(mode="json"), snapshot.model_dump(mode="json")) == clean_holdings


@pytest.mark.parametrize("mode", ["timeout", "drop", "wrong-id", "away", "cut"])
def test_holdings_persistent_faults_end_in_a_chain_error(chain: Chain, mode: str) -> None:
    with FaultyProxy(chain.node.url, mode, failures=10**6) as proxy, \
            pytest.raises(ChainError, match=r"no good answer after 2 attempts"):
        read_holdings(chain.markets, {"devnet": proxy.url}, chain.w3.eth.accounts[0], retries=1, backoff=0.01,
                      timeout=0.5)


def test_cli_holdings_failure_leaves_the_old_file(chain: Chain, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "holdings.json"
    out.write_text("{}")  # yesterday's file stays as it was, never replaced by a partial one
    with FaultyProxy(chain.node.url, "503", failures=10**6) as proxy:
        code = main(["holdings", "--rpc", proxy.url, "--markets", str(chain.markets), "--account",
                     chain.w3.eth.accounts[0], "--out", str(out)])
    assert code == 6
    assert out.read_text() == "{}"
    err = capsys.readouterr().err
    assert "secret-api-key-123" not in err and "no good answer" in err
