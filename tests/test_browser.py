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
CONTROLS = ".widget-slider, .widget-dropdown"  # the inputs _interact may use
SLIDER_HANDLES = ".jp-OutputArea-output .widget-slider .noUi-handle, .jp-OutputArea-output .widget-slider input[type=range]"
DROPDOWNS = ".jp-OutputArea-output .widget-dropdown select"


def _view_js(root: str) -> str:
    """JS: what a control must change, under ``root``: every output's text and vector/raster markup with
    the controls themselves taken out (a slider's readout changes with any keypress, the view may not)."""
    return """() => Array.from(document.querySelector(ROOT).querySelectorAll('.jp-OutputArea-output')).map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll(CONTROLS).forEach(s => s.remove());
    const g = Array.from(c.querySelectorAll('svg, canvas, img')).map(x => x.outerHTML).join('');
    return c.textContent + '|' + g;
}).join('\\n')""".replace("ROOT", repr(root)).replace("CONTROLS", repr(CONTROLS))


def _sliders_js(root: str) -> str:
    """JS: every enabled slider under ``root`` with room to move: its index among SLIDER_HANDLES, range
    and value. ipywidgets 8 draws sliders with noUiSlider (an ARIA slider handle); range inputs too."""
    return """() => Array.from(document.querySelector(ROOT).querySelectorAll(HANDLES)).map((e, i) => {
        const get = (a, b) => parseFloat(e.getAttribute(a) ?? e[b]);
        const lo = get('aria-valuemin', 'min'), hi = get('aria-valuemax', 'max'), v = get('aria-valuenow', 'value');
        return {i, lo, hi, v, off: !!e.closest('[disabled]')};
    }).filter(s => !s.off && s.hi > s.lo)""".replace("ROOT", repr(root)).replace("HANDLES", repr(SLIDER_HANDLES))


def _interact(page, root: str, nb: str) -> dict:
    """Move the first slider under ``root`` that has room (toward that room: many views start at their
    last step), or, with no such slider, pick another option of the first dropdown; then wait up to 30 s
    (the view redraws through the kernel) and assert that a view other than the control changed.
    Returns what was done ({} when there is no control to use)."""
    from playwright.sync_api import TimeoutError as PWTimeout

    view = _view_js(root)
    box = page.locator(root)
    sliders = page.evaluate(_sliders_js(root))
    if sliders:
        s = sliders[0]
        key = "ArrowRight" if s["v"] < s["hi"] else "ArrowLeft"
        handle = box.locator(SLIDER_HANDLES).nth(s["i"])
        handle.scroll_into_view_if_needed()
        before = page.evaluate(view)
        handle.focus()
        page.keyboard.press(key)
        did = {"slider": {**s, "key": key}}
    else:
        selects = [d for d in box.locator(DROPDOWNS).all() if d.locator("option").count() > 1 and d.is_enabled()]
        if not selects:
            return {}
        d = selects[0]
        d.scroll_into_view_if_needed()
        now = d.evaluate("e => e.selectedIndex")
        before = page.evaluate(view)
        d.select_option(index=1 if now == 0 else 0)
        did = {"dropdown": {"from": now, "to": 1 if now == 0 else 0}}
    try:
        page.wait_for_function(f"(b) => ({view})() !== b", arg=before, timeout=30_000, polling=500)
    except PWTimeout:
        pass  # the assertion below reports it
    assert page.evaluate(view) != before, f"{nb}: {did} changed no view"
    return did


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
    seen["sliders"] = len(page.evaluate(_sliders_js(PANEL)))
    seen.update(_interact(page, PANEL, nb))
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


# Controls of the interaction check itself: a control wired to a view through the kernel must pass, a
# control wired to nothing (only its own readout or selection changes) must fail.
_CONTROLS = {
    "slider_live": "import ipywidgets as W\ns = W.IntSlider(value=3, min=0, max=3, description='k')\n"
                   "out = W.HTML('k is 3')\ns.observe(lambda c: setattr(out, 'value', f'k is {c.new}'), names='value')\n"
                   "display(W.VBox([s, out]))",
    "slider_dead": "import ipywidgets as W\n"
                   "display(W.VBox([W.IntSlider(value=0, min=0, max=3, description='k'), W.HTML('fixed')]))",
    "menu_live": "import ipywidgets as W\nd = W.Dropdown(options=['a', 'b'], value='a')\nout = W.HTML('picked a')\n"
                 "d.observe(lambda c: setattr(out, 'value', f'picked {c.new}'), names='value')\ndisplay(W.VBox([d, out]))",
    "menu_dead": "import ipywidgets as W\ndisplay(W.VBox([W.Dropdown(options=['a', 'b'], value='a'), W.HTML('fixed')]))",
}


@pytest.mark.parametrize("kind", sorted(_CONTROLS))
def test_interaction_check_controls(lab, browser, kind):
    import nbformat

    base, token, nb_dir = lab
    name = f"_control_{kind}"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_CONTROLS[kind])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, nb_dir / f"{name}.ipynb")
    if kind == "slider_live":
        seen = _in_page(browser, base, token, name, (1000, 700))
        assert seen["sliders"] == 1 and seen["slider"]["key"] == "ArrowLeft"  # it starts at its max
    elif kind == "menu_live":
        seen = _in_page(browser, base, token, name, (1000, 700))
        assert seen["sliders"] == 0 and seen["dropdown"] == {"from": 0, "to": 1}
    else:
        with pytest.raises(AssertionError, match="changed no view"):
            _in_page(browser, base, token, name, (1000, 700))
        for f in ART.glob(f"{name}-failed.*"):  # an expected failure: its artifacts would mislead
            f.unlink()
