"""`workbench serve ID` (the Voila dashboard) end to end, on the quickstart notebook.

What a user runs:
    workbench serve quickstart [--port 8866]     # then open http://127.0.0.1:8866/

Each test starts that command on a free loopback port (in its own process group, with the runs folder
in a temporary directory), waits until the port accepts connections, and always stops it: SIGTERM
(Voila shuts its kernels down), then SIGKILL to the group if it is still up after 60 s; it then checks
that the server and every kernel it started are gone.
- test_serve_page_over_http (marked `model`: the page load executes the notebook with the embedded
  model): fetch the page over HTTP; the notebook ran (the summary printed by its last cell matches the
  results.json it wrote), no cell failed, the code is hidden, and the completion viewer's widget view
  (a model id that the page's JavaScript fetches from the kernel: Voila 0.5 embeds no widget state)
  and the plotly figure are in the page.
- test_serve_in_chromium (marked `browser`): load the page in headless Chromium, wait for the widgets,
  change the completion viewer's selection (quickstart has a dropdown, no slider) and see the shown
  completion change, and save artifacts/browser/voila-quickstart.png.
- test_serve_rejects_bad_input (unmarked, fast): an unknown notebook or a bad port is a clear error.
Run:
    nice -n 19 env HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q -p no:cacheprovider -m "model or browser" \\
        tests/test_serve.py
"""
from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_browser import ART, CHROMIUM_FLAGS, _free_port, _interact

pytestmark = pytest.mark.timeout(1800)
NB = "quickstart"
START_S = float(os.environ.get("SERVE_START_S", "300"))  # wait for the port (Voila imports slowly when the CPU is busy)
PAGE_S = float(os.environ.get("SERVE_PAGE_S", "900"))  # the page load runs the whole notebook


@contextlib.contextmanager
def served(tmp_path: Path, nb: str = NB):
    """Run `workbench serve nb` on a free loopback port; yields (base_url, note_children, leftover):
    call ``note_children()`` while kernels run so they are tracked; ``leftover`` is filled on exit with
    the pids that did not stop on SIGTERM (the server, or kernels still alive 30 s after it exited)."""
    pytest.importorskip("voila")
    psutil = pytest.importorskip("psutil")
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", WORKBENCH_RUNS_DIR=str(tmp_path / "runs"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", nb, "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    leftover: list[int] = []
    seen: dict[int, object] = {}  # every process the server started (kernels run in their own session)

    def note_children():
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(proc.pid).children(recursive=True):
                seen.setdefault(c.pid, c)

    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"workbench serve exited with {proc.returncode}: " + (tmp_path / "serve.log").read_text()[-3000:])
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
                break
            if time.time() - t0 > START_S:
                pytest.fail(f"workbench serve did not listen within {START_S:.0f} s: "
                            + (tmp_path / "serve.log").read_text()[-3000:])
            time.sleep(1)
        yield f"http://127.0.0.1:{port}", note_children, leftover
    finally:
        note_children()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            leftover.append(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
        _, alive = psutil.wait_procs(list(seen.values()), timeout=30)
        for p in alive:  # a kernel left behind (its own session): stop it, and report it
            leftover.append(p.pid)
            with contextlib.suppress(psutil.Error):
                p.kill()


@pytest.mark.parametrize("argv, msg", [(["serve", "no_such_notebook"], "unknown notebook 'no_such_notebook'"),
                                       (["serve", NB, "--port", "70000"], "--port 70000 is not a TCP port")])
def test_serve_rejects_bad_input(argv, msg, capsys):
    from workbench.cli import main

    assert main(argv) == 2  # returns before starting anything
    assert msg in capsys.readouterr().err


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=PAGE_S) as r:  # Voila streams the page while the cells run
        assert r.status == 200
        return r.read().decode()


@pytest.mark.model
def test_serve_page_over_http(tmp_path):
    with served(tmp_path) as (base, note_children, leftover):
        page = _fetch(base + "/")
        note_children()
    assert leftover == [], f"processes that did not stop with the server: {leftover}"

    # the notebook ran to its end: no failed cell, and the summary its last cell printed is the one it saved
    assert "There was an error when executing cell" not in page and "Traceback" not in page
    from workbench.results import summary_text

    saved = json.loads((tmp_path / "runs" / NB / "interactive" / "results.json").read_text())
    summary = saved["metrics"]["summary"]
    assert summary["completions"] == 8  # 4 prompts x n=2 (the notebook's defaults)
    shown = html.unescape(page)
    assert summary_text(saved["metrics"]) in shown, "the printed summary differs from the saved one"
    # the code is hidden, the outputs are there
    assert "load_llm(backend" not in shown
    outputs = [json.loads(m) for m in re.findall(
        r'<script type="application/vnd.voila.cell-output\+json">(.*?)</script>', page, re.S)]
    views = [o["data"]["application/vnd.jupyter.widget-view+json"] for o in outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1 and re.fullmatch(r"[0-9a-f]{32}", views[0]["model_id"])  # the completion viewer
    assert "VBox(children=(HTML(" in outputs[0]["data"]["text/plain"]
    figs = [o["data"]["application/vnd.plotly.v1+json"] for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figs) == 1 and len(figs[0]["data"][0]["y"]) == summary["completions"]


@pytest.mark.browser
def test_serve_in_chromium(tmp_path):
    if not shutil.which("chromium"):
        pytest.skip("chromium not installed (make test-browser installs it)")
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    ART.mkdir(parents=True, exist_ok=True)
    shot = ART / f"voila-{NB}.png"
    with served(tmp_path) as (base, note_children, leftover), sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS, headless=True)
        page = b.new_page(viewport={"width": 1300, "height": 1700})
        try:
            page.goto(base + "/", wait_until="domcontentloaded", timeout=PAGE_S * 1000)
            # Voila shows the outputs once every cell ran; the widgets then load from the kernel
            page.wait_for_selector(".widget-dropdown select", timeout=PAGE_S * 1000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
            note_children()
            # code hidden: no code cell input, no notebook source in the page's text
            assert page.locator(".jp-CodeCell .jp-InputArea").count() == 0
            assert "load_llm(backend" not in page.inner_text("body")
            detail_before = page.locator(".jp-OutputArea-output .widget-html").last.inner_text()
            did = _interact(page, "body", NB)
            assert did.get("dropdown") == {"from": 0, "to": 1}
            detail_after = page.locator(".jp-OutputArea-output .widget-html").last.inner_text()
            assert "What is 12 + 7?" in detail_before and detail_after != detail_before  # another completion
            page.screenshot(path=str(shot), full_page=True)  # Voila scrolls inside its body: a tall viewport
        except BaseException:
            page.screenshot(path=str(ART / f"voila-{NB}-failed.png"), full_page=True)
            raise
        finally:
            b.close()
    assert leftover == [], f"processes that did not stop with the server: {leftover}"
    assert shot.stat().st_size > 10_000
