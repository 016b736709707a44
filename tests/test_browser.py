"""End-to-end in a real browser: JupyterLab on loopback (token auth) driven by Playwright in Debian's
headless Chromium (no network side-channels). For each notebook: open it, Run All, wait until every
cell ran, check that widgets rendered, move the first slider (if any) and check that the view changed,
and save a screenshot to artifacts/browser/<id>.png. Run with `make test-browser`."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(7200)]
ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "artifacts" / "browser"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--metrics-recording-only"]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
if os.environ.get("BROWSER_NOTEBOOKS"):
    NOTEBOOKS = [n for n in os.environ["BROWSER_NOTEBOOKS"].split(",") if n]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not shutil.which("chromium"):
        pytest.skip("chromium not installed (make test-browser installs it)")
    pytest.importorskip("playwright")
    token, port = secrets.token_hex(16), _free_port()
    work = tmp_path_factory.mktemp("lab")
    nb_copy = work / "notebooks"  # Lab autosaves: work on a copy, never on the committed notebooks
    shutil.copytree(ROOT / "notebooks", nb_copy, ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
    settings = work / "settings"
    # render every cell (no virtual windowing, so all outputs are in the DOM); no news prompt
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = dict(os.environ, HF_HUB_OFFLINE="1", JUPYTER_CONFIG_DIR=str(work / "cfg"),
               JUPYTER_RUNTIME_DIR=str(work / "rt"), WORKBENCH_RUNS_DIR=str(work / "runs"),
               JUPYTERLAB_SETTINGS_DIR=str(settings))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nb_copy}",
           "--ServerApp.disable_check_xsrf=False", "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(int(os.environ.get('BROWSER_LAB_START_S', '600'))):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.terminate()
        pytest.fail("JupyterLab did not start: " + (work / "lab.log").read_text()[-2000:])
    yield base, token
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


def _outputs_text(page) -> str:
    return page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .map(e => e.innerText + '|' + (e.querySelector('svg, canvas, img') ? e.innerHTML.length : 0)).join('\\n')""")


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_runs_and_widgets_respond(lab, browser, nb):
    base, token = lab
    ART.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}/lab/tree/{nb}.ipynb?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_function("() => document.querySelector('#jp-main-statusbar')?.innerText.includes('Idle')",
                           timeout=300_000)  # kernel started
    n_code = page.locator(".jp-CodeCell").count()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    deadline = time.time() + float(os.environ.get("BROWSER_NB_TIMEOUT", "1800"))
    want = {str(i) for i in range(1, n_code + 1)}
    while time.time() < deadline:  # a fresh kernel numbers the cells 1..n once all have run
        prompts = page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt", "els => els.map(e => e.innerText)")
        if {p.strip("[]: ") for p in prompts} == want:
            break
        time.sleep(2)
    else:
        page.screenshot(path=str(ART / f"{nb}-timeout.png"), full_page=True)
        pytest.fail(f"{nb}: cells did not finish in time")
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .jp-RenderedText:has-text('Traceback'), .jp-OutputArea-output:has-text('Error Traceback')")
    assert errors.count() == 0, f"{nb}: an error output is shown"
    widgets = page.locator(".jupyter-widgets, .widget-container, .js-plotly-plot")
    assert widgets.count() > 0, f"{nb}: no widget or figure rendered"
    slider = page.locator(".widget-slider .noUi-handle, .widget-slider input[type=range]").first
    if slider.count():
        before = _outputs_text(page)
        slider.scroll_into_view_if_needed()
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(1500)
        assert _outputs_text(page) != before, f"{nb}: moving the slider changed nothing"
    page.screenshot(path=str(ART / f"{nb}.png"), full_page=False)
    page.close()
