"""The audit commands end to end: replay (exit 0 / 5 / 2), explain, diff, frontier and the HTML report
rendered in headless Chromium (Debian's chromium, installed by .ci/run), its numbers checked."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bondfolio.cli import main
from tests.factories import EXAMPLE, reseal

ARGS = [str(EXAMPLE / "snapshot.json"), str(EXAMPLE / "policy.toml"), "--holdings", str(EXAMPLE / "holdings.json")]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def decision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "decision.json"
    assert main(["allocate", *ARGS, "--out", str(path)]) == 0
    return path


def test_replay_exit_codes(decision: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(decision)]) == 0
    assert "identical" in capsys.readouterr().out
    record = json.loads(decision.read_text())
    record["allocation"][0]["weight"] += 0.05
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(reseal(record)))
    assert main(["replay", str(changed), "--format", "json"]) == 5
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "different"
    assert any(d["path"].startswith("allocation[") and d["path"].endswith(".weight") for d in out["differences"])
    record["metrics"]["nav"] = 1.0  # edited without re-sealing
    changed.write_text(json.dumps(record))
    assert main(["replay", str(changed)]) == 2
    assert "edited or damaged" in capsys.readouterr().err


def test_explain_and_stress_use_the_embedded_inputs(decision: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(decision), "--no-resolve"]) == 0
    out = capsys.readouterr().out
    assert "binding constraints" in out and "risk contributions" in out and "dual estimate" in out
    assert main(["stress", str(decision)]) == 0
    assert "CVaR 0.95" in capsys.readouterr().out


def test_diff_command(decision: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = json.loads((EXAMPLE / "snapshot.json").read_text())
    snap["opportunities"][0]["apy"] += 0.01
    (tmp_path / "s.json").write_text(json.dumps(snap))
    other = tmp_path / "b.json"
    assert main(["allocate", str(tmp_path / "s.json"), *ARGS[1:], "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["diff", str(decision), str(other), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    first = snap["opportunities"][0]["id"]
    assert [i["item"] for i in report["inputs"]] == [f"opportunity '{first}'"]
    assert report["inputs"][0]["changes"]["apy"][1] == pytest.approx(snap["opportunities"][0]["apy"])
    (group,) = report["attribution"]  # one change: it explains the whole move
    assert group["moved"] == pytest.approx(report["moved_total"], abs=1e-6)


def test_frontier_command_writes_csv_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    assert main(["frontier", *ARGS, "--points", "6", "--out", str(out), "--png", str(png)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 6 and sum(r["is_policy"] == "True" for r in rows) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["frontier", *ARGS, "--points", "2"]) == 2


class _Spans(HTMLParser):
    """Collects the report's ``data-key``/``data-value`` spans (with their rendered text) and images."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[tuple[float, str]]] = {}
        self.images: list[str] = []
        self._open: tuple[str, float] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "span" and a.get("data-key") and a.get("data-value") is not None:
            self._open = (str(a["data-key"]), float(str(a["data-value"])))
        if tag == "img":
            self.images.append(str(a.get("src", "")))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            key, value = self._open
            self.values.setdefault(key, []).append((value, data))
            self._open = None


def test_report_renders_in_chromium_with_the_records_numbers(decision: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required (.ci/run installs it: apt-get install chromium)"
    page = tmp_path / "report.html"
    assert main(["report", str(decision), "--out", str(page), "--points", "5", "--no-resolve"]) == 0
    record = json.loads(decision.read_text())
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    spans = _Spans()
    spans.feed(dom)
    m = record["metrics"]
    # every headline number: its data-value is the record's, and the text shown is that value rounded
    for key, value, shown in [("expected-apy", m["expected_apy"], f"{m['expected_apy'] * 100:.3f}%"),
                              ("volatility", m["volatility"], f"{m['volatility'] * 100:.3f}%"),
                              ("duration", m["duration"], f"{m['duration']:.3f} y"),
                              ("nav", m["nav"], f"{m['nav']:,.0f}")]:
        (got, text), *_ = spans.values[key]
        assert got == value and text == shown, key
    weights = {a["id"]: a["weight"] for a in record["allocation"]}
    shown_weights = [v for v, _ in spans.values["weight"]]
    held = sorted((w for w in weights.values() if abs(w) > 5e-5), key=abs, reverse=True)
    assert shown_weights[:len(held)] == held  # the allocation table, largest first
    assert re.search(r"Independent check: passed: \d+ constraint rows", dom)
    assert record["record_sha256"] in dom
    # three charts, all PNGs embedded as data URIs (nothing to fetch)
    assert len(spans.images) == 3 and all(src.startswith("data:image/png;base64,") for src in spans.images)
    for src in spans.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # and the page paints: a screenshot that is not blank
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, "--window-size=1100,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] == 2400 and float(np.std(pixels)) > 0.05
