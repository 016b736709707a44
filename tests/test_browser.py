"""End-to-end in a real browser: JupyterLab on loopback (token auth) driven by Playwright in Debian's
headless Chromium (no network side-channels). For each notebook: open it, Run All, wait until every
cell ran, check that no error output is shown and that widgets rendered, move the first slider that has
room to move (toward that room: many views start at their last step) and check that a view other than
the slider itself changed, and save a screenshot to artifacts/browser/<id>.png. On a failure it saves
artifacts/browser/<id>-failed.png (full page) and <id>-failed.json (open dialogs, kernel status, cell
numbers, error outputs). Each notebook's kernel is shut down after its test.

Run with `make test-browser`, or:
    nice -n 19 env HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q -s -m browser -p no:cacheprovider \
        tests/test_browser.py [-k autobench]
Environment: BROWSER_NOTEBOOKS=id1,id2 (a subset), BROWSER_NB_FACTOR (Run All may take this many times
the notebook's metadata runtime_s, default 15, at least 600 s) or BROWSER_NB_TIMEOUT (seconds, fixed),
BROWSER_LAB_START_S (wait for the Lab server, default 600)."""
from __future__ import annotations

import json
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
    yield base, token, nb_copy
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in the current tab
# What a slider move must change: every output's text and vector/raster markup, with the sliders
# themselves taken out (their own readout changes with any keypress, the view may not).
_VIEW_JS = """() => Array.from(document.querySelector(PANEL).querySelectorAll('.jp-OutputArea-output')).map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll('.widget-slider').forEach(s => s.remove());
    const g = Array.from(c.querySelectorAll('svg, canvas, img')).map(x => x.outerHTML).join('');
    return c.textContent + '|' + g;
}).join('\\n')""".replace("PANEL", repr(PANEL))

# Every slider with room to move: index, position and whether its value can grow. ipywidgets 8 draws
# sliders with noUiSlider (an ARIA slider handle); a plain range input is handled too.
_SLIDERS_JS = """() => Array.from(document.querySelector(PANEL).querySelectorAll(
        '.jp-OutputArea-output .widget-slider .noUi-handle, .jp-OutputArea-output .widget-slider input[type=range]'))
    .map((e, i) => {
        const get = (a, b) => parseFloat(e.getAttribute(a) ?? e[b]);
        const lo = get('aria-valuemin', 'min'), hi = get('aria-valuemax', 'max'), v = get('aria-valuenow', 'value');
        const off = !!e.closest('[disabled]');
        return {i, lo, hi, v, off};
    }).filter(s => !s.off && s.hi > s.lo)""".replace("PANEL", repr(PANEL))

# Lab's own state that explains a stuck or failed run: open dialogs, the kernel status, error outputs.
_STATE_JS = """() => ({
    dialogs: Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.innerText.slice(0, 500)),
    status: document.querySelector('#jp-main-statusbar')?.innerText ?? '',
    prompts: Array.from(document.querySelector(PANEL)?.querySelectorAll('.jp-CodeCell .jp-InputPrompt') ?? []).map(e => e.innerText),
    errors: Array.from(document.querySelectorAll(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"))
        .map(e => e.innerText).filter(t => /Traceback|Error/.test(t)).map(t => t.slice(-1500)),
})""".replace("PANEL", repr(PANEL))


def _runtime_s(nb: str) -> float:
    """The notebook's measured default runtime (metadata.workbench.runtime_s), 120 s when absent."""
    path = ROOT / "notebooks" / f"{nb}.ipynb"
    if not path.exists():  # the control notebooks below
        return 120.0
    meta = json.loads(path.read_text()).get("metadata", {})
    return float(meta.get("workbench", {}).get("runtime_s") or 120)


def _run_timeout_s(nb: str) -> float:
    """How long Run All may take: BROWSER_NB_TIMEOUT seconds if set, else BROWSER_NB_FACTOR (default 15)
    times the notebook's measured runtime, at least 600 s. A notebook in Lab on a shared CPU runs several
    times slower than its measured runtime (browser and Lab server share the cores)."""
    if os.environ.get("BROWSER_NB_TIMEOUT"):
        return float(os.environ["BROWSER_NB_TIMEOUT"])
    return max(600.0, float(os.environ.get("BROWSER_NB_FACTOR", "15")) * _runtime_s(nb))


def _shutdown_kernels(base: str, token: str) -> None:
    """Stop the kernels of our own Lab server, so notebooks do not pile up in memory."""
    req = urllib.request.Request(f"{base}/api/kernels", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        kernels = json.load(r)
    for k in kernels:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{k['id']}", method="DELETE",
                                                      headers={"Authorization": f"token {token}"}), timeout=60)


def _run_all_and_check(page, nb: str) -> dict:
    """Run every cell, check errors, widgets and a slider move; returns what was seen."""
    from playwright.sync_api import TimeoutError as PWTimeout

    page.wait_for_selector(f"{PANEL} .jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_function("() => document.querySelector('#jp-main-statusbar')?.innerText.includes('Idle')",
                           timeout=300_000)  # kernel started
    panel = page.locator(PANEL)
    n_code = panel.locator(".jp-CodeCell").count()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    t0, limit = time.time(), _run_timeout_s(nb)
    want = {str(i) for i in range(1, n_code + 1)}
    while True:  # a fresh kernel numbers the cells 1..n once all have run
        prompts = panel.locator(".jp-CodeCell .jp-InputPrompt").evaluate_all("els => els.map(e => e.innerText)")
        if {p.strip("[]: ") for p in prompts} == want:
            break
        if page.locator(".jp-Dialog").count():
            pytest.fail(f"{nb}: a dialog is open while cells run")
        if time.time() - t0 > limit:
            pytest.fail(f"{nb}: cells did not finish in {limit:.0f} s")
        time.sleep(2)
    seen = {"run_s": round(time.time() - t0, 1)}
    errors = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .jp-RenderedText:has-text('Traceback'), .jp-OutputArea-output:has-text('Error Traceback')")
    assert errors.count() == 0, f"{nb}: an error output is shown"
    widgets = panel.locator(".jupyter-widgets, .widget-container, .js-plotly-plot")
    assert widgets.count() > 0, f"{nb}: no widget or figure rendered"
    seen["widgets"] = widgets.count()
    page.wait_for_timeout(2000)  # let late widget views (plotly FigureWidgets) finish drawing
    sliders = page.evaluate(_SLIDERS_JS)
    seen["sliders"] = len(sliders)
    if sliders:
        # the first slider that can move; toward the side with room (many views start at the last step)
        s = sliders[0]
        key = "ArrowRight" if s["v"] < s["hi"] else "ArrowLeft"
        handle = panel.locator(".jp-OutputArea-output .widget-slider .noUi-handle, "
                              ".jp-OutputArea-output .widget-slider input[type=range]").nth(s["i"])
        handle.scroll_into_view_if_needed()
        before = page.evaluate(_VIEW_JS)
        handle.focus()
        page.keyboard.press(key)
        try:  # the view redraws through the kernel: give it up to 30 s on a busy machine
            page.wait_for_function(f"(b) => ({_VIEW_JS})() !== b", arg=before, timeout=30_000, polling=500)
        except PWTimeout:
            pass  # the assertion below reports it
        after = page.evaluate(_VIEW_JS)
        seen["slider"] = {**s, "key": key}
        assert after != before, f"{nb}: moving the slider ({key} from {s['v']} in [{s['lo']}, {s['hi']}]) changed no view"
    return seen


def _in_page(browser, base: str, token: str, nb: str, viewport=(1400, 1000)) -> dict:
    """Open ``nb`` in Lab and run the checks; on a failure keep a full-page screenshot and Lab's state
    under artifacts/browser/<nb>-failed.*; the page is closed and the kernels shut down in all cases."""
    ART.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        # a workspace of its own: Lab restores a workspace's open tabs, so a shared one would reopen
        # (and start kernels for) every notebook tested before this one
        page.goto(f"{base}/lab/workspaces/t-{nb.strip('_')}/tree/{nb}.ipynb?reset&token={token}",
                  wait_until="domcontentloaded")
        try:
            seen = _run_all_and_check(page, nb)
        except BaseException:
            page.screenshot(path=str(ART / f"{nb}-failed.png"), full_page=True)
            (ART / f"{nb}-failed.json").write_text(json.dumps(page.evaluate(_STATE_JS), indent=1))
            raise
        page.screenshot(path=str(ART / f"{nb}.png"), full_page=False)
        print(f"{nb}: {seen}")
        return seen
    finally:
        page.close()
        _shutdown_kernels(base, token)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_runs_and_widgets_respond(lab, browser, nb):
    base, token, _ = lab
    _in_page(browser, base, token, nb)


# Controls of the slider check itself: a slider wired to a view through the kernel must pass, a slider
# wired to nothing (only its own readout changes) must fail.
_CONTROLS = {
    "live": "import ipywidgets as W\ns = W.IntSlider(value=3, min=0, max=3, description='k')\n"
            "out = W.HTML('k is 3')\ns.observe(lambda c: setattr(out, 'value', f'k is {c.new}'), names='value')\n"
            "display(W.VBox([s, out]))",
    "dead": "import ipywidgets as W\ndisplay(W.VBox([W.IntSlider(value=0, min=0, max=3, description='k'), W.HTML('fixed')]))",
}


@pytest.mark.parametrize("kind", sorted(_CONTROLS))
def test_slider_check_controls(lab, browser, kind):
    import nbformat

    base, token, nb_dir = lab
    name = f"_control_{kind}"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_CONTROLS[kind])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, nb_dir / f"{name}.ipynb")
    if kind == "live":
        seen = _in_page(browser, base, token, name, (1000, 700))
        assert seen["sliders"] == 1 and seen["slider"]["key"] == "ArrowLeft"  # it starts at its max
    else:
        with pytest.raises(AssertionError, match="changed no view"):
            _in_page(browser, base, token, name, (1000, 700))
        for f in ART.glob(f"{name}-failed.*"):  # an expected failure: its artifacts would mislead
            f.unlink()
