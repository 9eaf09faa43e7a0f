"""Start and stop a local anvil node (the native binary from npm ``@foundry-rs/anvil``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"

#: anvil's default funded accounts are derived from this public test mnemonic (devnet only).
CHAIN_ID = 31337


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> Path:
    """Path of the anvil binary; a clear error when ``npm ci`` has not been run."""
    if not ANVIL.exists():
        raise FileNotFoundError(f"anvil not found at {ANVIL}: run 'npm ci' in {ROOT} first")
    return ANVIL


@dataclass
class Anvil:
    """A running anvil process on 127.0.0.1. Use as a context manager or call :meth:`stop`."""

    port: int
    process: subprocess.Popen[bytes]
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, load_state: Path | None = None, dump_state: Path | None = None, chain_id: int = CHAIN_ID,
              timestamp: int | None = None, timeout: float = 20.0) -> Anvil:
        """Start anvil on a free port and wait until it answers JSON-RPC."""
        port = free_port()
        args = [str(binary()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
                "--silent", "--code-size-limit", "100000"]
        if load_state is not None:
            args += ["--load-state", str(load_state)]
        if dump_state is not None:
            args += ["--dump-state", str(dump_state)]
        if timestamp is not None:
            args += ["--timestamp", str(timestamp)]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env={**os.environ, "NO_COLOR": "1"})
        node = cls(port, process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"anvil exited with code {process.returncode}: {err.strip()[:500]}")
            try:
                node.rpc("eth_chainId")
                return node
            except OSError:
                time.sleep(0.02)
        node.stop()
        raise TimeoutError(f"anvil did not answer on {node.url} within {timeout} s")

    def rpc(self, method: str, *params: object) -> object:
        """One raw JSON-RPC call (for anvil_* methods web3 does not wrap)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def stop(self) -> None:
        """Stop the process by its PID (terminate, then kill if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
