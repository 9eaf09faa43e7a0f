"""One chain, read-only: JSON-RPC with bounded retries, a pinned block, batched calls.

Transport is web3.py's ``HTTPProvider``. Its own retry layer is switched off and replaced by one
bounded loop (``retries`` attempts after the first, exponential backoff) around every request, single
or batched, so the number of attempts is exact and covers HTTP 429/5xx, timeouts, refused connections
and malformed replies alike. No private key is accepted anywhere and only ``eth_chainId``,
``eth_getBlockByNumber``, ``eth_getCode`` and ``eth_call`` are ever sent.

RPC URLs often carry API keys: :func:`redact` keeps only scheme and host for every message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from eth_abi import decode, encode
from web3 import HTTPProvider

from bondfolio.adapters.base import MULTICALL3, TIMESTAMP, Call, Result
from bondfolio.errors import ChainError

__all__ = ["ChainClient", "PinnedBlock", "redact"]

_AGGREGATE3 = bytes.fromhex("82ad56cb")  # aggregate3((address,bool,bytes)[])


def redact(url: str) -> str:
    """``scheme://host[:port]/…``: never the path, query or credentials, which may hold API keys."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme or 'http'}://{host}{port}{tail}"


@dataclass(frozen=True)
class PinnedBlock:
    number: int
    hash: str
    timestamp: int
    base_fee: int | None = None
    """The block's base fee per gas (wei), where the chain has EIP-1559."""


#: Longest ``Retry-After`` (seconds) a client waits for; a server asking more gets the normal backoff.
MAX_RETRY_AFTER = 5.0


class _Retryable(Exception):
    pass


class ChainClient:
    """Read-only client of one chain at one pinned block.

    Parameters
    ----------
    url
        JSON-RPC endpoint (never printed in full).
    chain
        The chain's name in MARKETS.toml (for messages).
    expected_chain_id
        When given, a node on another chain is an error.
    retries, backoff, timeout
        Attempts after the first, initial backoff (seconds, doubling), per-request timeout (seconds).
    """

    def __init__(self, url: str, chain: str, expected_chain_id: int | None = None, retries: int = 4,
                 backoff: float = 0.25, timeout: float = 20.0) -> None:
        self.url = url
        self.chain = chain
        self.expected_chain_id = expected_chain_id
        self.retries = retries
        self.backoff = backoff
        self.provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.requests = 0
        """HTTP requests sent (each batch counts once)."""
        self.block: PinnedBlock | None = None
        self.chain_id: int | None = None
        self.multicall = False

    # ------------------------------------------------------------------ transport
    def _send(self, payload: Any) -> Any:
        """POST with the bounded retry loop; returns the decoded JSON body.

        Retried (up to ``retries`` times, backoff doubling, or the server's ``Retry-After`` up to
        :data:`MAX_RETRY_AFTER` seconds): HTTP 429 and 5xx, timeouts, refused or dropped connections, a
        body that is not JSON or is cut short, a reply for another request id, a batch reply missing or
        duplicating entries (entries may come in any order)."""
        last = ""
        wait = 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(max(wait, self.backoff * 2 ** (attempt - 1)))
            wait = 0.0
            self.requests += 1
            try:
                body = self._post(payload)
                if isinstance(payload, list):
                    if not isinstance(body, list) or len(body) != len(payload):
                        raise _Retryable("a batch reply with missing or extra entries")
                    ids = [item.get("id") if isinstance(item, dict) else None for item in body]
                    if sorted(ids, key=str) != sorted((p["id"] for p in payload), key=str):
                        raise _Retryable("a batch reply answering other requests")
                elif not isinstance(body, dict) or ("result" not in body and "error" not in body):
                    raise _Retryable("malformed reply")
                elif body.get("id") != payload.get("id"):
                    raise _Retryable("a reply for another request")
                return body
            except _Retryable as exc:
                last = str(exc)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status != 429 and status < 500:
                    raise ChainError(f"{self._where()}: HTTP {status} from the node: check the URL") from None
                last = f"HTTP {status}"
                after = exc.response.headers.get("Retry-After") if exc.response is not None else None
                if after is not None:
                    try:
                        wait = min(max(float(after), 0.0), MAX_RETRY_AFTER)
                    except ValueError:
                        wait = 0.0
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                last = type(exc).__name__
            except ValueError:
                last = "reply is not JSON (or cut short)"
        raise ChainError(f"{self._where()}: no good answer after {self.retries + 1} attempts (last: {last}): "
                         "check the node or try again later")

    def _post(self, payload: Any) -> Any:
        session = requests.Session()
        try:
            response = session.post(str(self.provider.endpoint_uri), json=payload,
                                    timeout=self.provider.get_request_kwargs().get("timeout", 20))
            response.raise_for_status()
            return response.json()
        finally:
            session.close()

    def _where(self) -> str:
        return f"chain '{self.chain}' at {redact(self.url)}"

    def request(self, method: str, *params: Any) -> Any:
        body = self._send({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        if "error" in body:
            raise ChainError(f"{self._where()}: {method} failed: {body['error'].get('message', body['error'])}")
        return body["result"]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several JSON-RPC calls in one HTTP request; each item is a result or an error dict."""
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        body = self._send(payload)  # every id answered once (checked, retried otherwise), in any order
        by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
        return [by_id[i].get("result", {"error": by_id[i].get("error")}) for i in range(len(calls))]

    # ------------------------------------------------------------------ pinning
    def pin(self, block: int | None = None) -> PinnedBlock:
        """Fix the block all reads use (latest when ``None``); checks the chain id; notes Multicall3."""
        tag = "latest" if block is None else hex(block)
        chain_id, head, code = self.batch([("eth_chainId", []), ("eth_getBlockByNumber", [tag, False]),
                                           ("eth_getCode", [MULTICALL3, tag])])
        if not isinstance(head, dict) or "hash" not in head:
            raise ChainError(f"{self._where()}: block {tag} is not available")
        self.chain_id = int(chain_id, 16)
        if self.expected_chain_id is not None and self.chain_id != self.expected_chain_id:
            raise ChainError(f"{self._where()}: the node is on chain id {self.chain_id}, but chain '{self.chain}' "
                             f"expects {self.expected_chain_id}: use the right RPC URL")
        self.multicall = isinstance(code, str) and len(code) > 2
        fee = head.get("baseFeePerGas")
        if block is not None and int(head["number"], 16) != block:
            raise ChainError(f"{self._where()}: asked for block {block}, the node answered block "
                             f"{int(head['number'], 16)}: check the node")
        self.block = PinnedBlock(int(head["number"], 16), head["hash"], int(head["timestamp"], 16),
                                 int(fee, 16) if isinstance(fee, str) else None)
        return self.block

    def verify(self) -> None:
        """Fail if the pinned block's hash changed (a reorg happened while reading)."""
        assert self.block is not None
        head = self.request("eth_getBlockByNumber", hex(self.block.number), False)
        if not isinstance(head, dict) or head.get("hash") != self.block.hash:
            raise ChainError(f"{self._where()}: block {self.block.number} changed while it was read (reorg): "
                             "read again")

    # ------------------------------------------------------------------ calls
    def execute(self, calls: Sequence[Call]) -> list[Result]:
        """Every call at the pinned block (or its own ``block``) in one HTTP request."""
        assert self.block is not None, "pin() first"
        groups: dict[int, list[int]] = {}
        for i, call in enumerate(calls):
            groups.setdefault(call.block if call.block is not None else self.block.number, []).append(i)
        results: list[Result | None] = [None] * len(calls)
        if self.multicall:
            requests_: list[tuple[str, list[Any]]] = []
            for number, idx in groups.items():
                data = _AGGREGATE3 + encode(["(address,bool,bytes)[]"],
                                            [[(calls[i].target, True, calls[i].data) for i in idx]])
                requests_.append(("eth_call", [{"to": MULTICALL3, "data": "0x" + data.hex()}, hex(number)]))
            replies = self.batch(requests_)
            for (number, idx), reply in zip(groups.items(), replies, strict=True):
                if not isinstance(reply, str):
                    raise ChainError(f"{self._where()}: Multicall3 at block {number} failed: {reply}")
                (pairs,) = decode(["(bool,bytes)[]"], bytes.fromhex(reply[2:]))
                for i, (ok, raw) in zip(idx, pairs, strict=True):
                    results[i] = Result.of(calls[i], ok, raw)
        else:
            order = [i for idx in groups.values() for i in idx]
            pinned = self.block.number
            requests_ = []
            for i in order:
                at = calls[i].block
                tag = hex(pinned if at is None else at)
                if calls[i].fn == TIMESTAMP:  # no Multicall3 here: read the block header instead
                    requests_.append(("eth_getBlockByNumber", [tag, False]))
                else:
                    requests_.append(("eth_call", [{"to": calls[i].target, "data": "0x" + calls[i].data.hex()},
                                                   tag]))
            replies = self.batch(requests_)
            for i, reply in zip(order, replies, strict=True):
                if calls[i].fn == TIMESTAMP and isinstance(reply, dict) and "timestamp" in reply:
                    results[i] = Result.of(calls[i], True, encode(["uint256"], [int(reply["timestamp"], 16)]))
                    continue
                ok = isinstance(reply, str)
                results[i] = Result.of(calls[i], ok, bytes.fromhex(reply[2:]) if ok else b"")
        return [r for r in results if r is not None]
