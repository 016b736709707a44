"""Run folders a researcher can open: every plotly figure in the HTML export, compact folders,
long traces beside results.json, the report's links (workbench/export.py, workbench/results.py)."""
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbench import export
from workbench.results import load_results, record
from workbench.runs import REPO_ROOT, run_notebook

CELLS = [
    "out_dir = None",
    "import plotly.graph_objects as go\nimport ipywidgets as w\nfrom IPython.display import display",
    "go.Figure(go.Scatter(y=[1, 2, 3])).show()\nfig = go.Figure(go.Bar(y=[1, 2]))\nfig.show()\nfig.show()",
    "go.FigureWidget(go.Scatter(y=[3, 1]))",
    "display(w.VBox([w.IntSlider(), go.FigureWidget(go.Bar(y=[1])), go.FigureWidget(go.Bar(y=[2]))]))",
    "display(w.IntSlider())",
    # printing into an Output widget while the cell runs (the embodied trace viewer does): nbclient's
    # output hook needs the widget's stored state, so a run without it crashed here
    "o = w.Output()\ndisplay(o)\nwith o:\n    print('inside an Output widget')",
    "from workbench.results import record\n"
    "record({'summary': {'acc': 0.5}, 'trace': [{'step': i, 'loss': 1 / (i + 1)} for i in range(20000)]},\n"
    "       {'seed': 0}, out_dir, notebook_id='figs')",
]
SHOWN = 3 + 1 + 2  # figures the cells above show: three fig.show(), one FigureWidget, two in a VBox


@pytest.fixture
def figs_notebook(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nbformat.write(nb, nbs / "figs.ipynb")
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS", str(nbs))
    return nbs / "figs.ipynb"


def test_html_export_shows_every_figure_and_the_folder_is_compact(figs_notebook, tmp_path):
    r = run_notebook("figs", {}, tmp_path / "run")
    assert r.status == "ok", r.error
    d = tmp_path / "run"
    nb = nbformat.read(d / "figs.ipynb", as_version=4)
    page = (d / "figs.html").read_text()
    # figures: as many drawn in the HTML as the notebook shows, plotly.js once and from no CDN
    assert export.html_figure_count(page) == SHOWN
    assert export.notebook_figure_count(nb) == SHOWN
    assert page.count("* plotly.js v") == 1 and not re.search(r'<script[^>]+src="[^"]*plot\.ly', page)
    assert page.index("* plotly.js v") < page.index('class="plotly-graph-div"')
    # every widget (the bare slider and the Output widget too) says in the export that it needs a live kernel
    assert export.widget_outputs(nb) == (4, 4)
    assert page.count(f'class="{export.SNAPSHOT_CLASS}"') == 4 and "needs a live kernel" in page
    # the mimetype stays for JupyterLab, next to the HTML view
    assert sum(export.PLOTLY_MIMETYPE in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])) == 3
    # compact: no widget state (with it, each FigureWidget carries plotly's widget bundle), the long
    # trace beside results.json, and the folder within the budget
    assert "widgets" not in nb.metadata
    assert (d / "figs.ipynb").stat().st_size < 300_000
    res = json.loads((d / "results.json").read_text())
    assert res["metrics"]["summary"] == {"acc": 0.5}
    assert res["metrics"]["trace"] == {"$trace": "results.traces.json.gz", "key": "trace", "items": 20000}
    assert (d / "results.json").stat().st_size < 20_000
    with gzip.open(d / "results.traces.json.gz", "rt") as f:
        assert json.load(f)["trace"][19999] == {"step": 19999, "loss": 1 / 20000}
    assert load_results(d)["metrics"]["trace"][5] == {"step": 5, "loss": 1 / 6}
    assert export.folder_bytes(d) < export.RUN_FOLDER_BUDGET_BYTES
    # the report links the run's HTML and shows its metric
    rep = subprocess.run([sys.executable, "-m", "workbench", "report", str(tmp_path)], capture_output=True,
                         text=True, env={**__import__("os").environ, "WORKBENCH_NOTEBOOKS": str(figs_notebook.parent)})
    assert rep.returncode == 0, rep.stderr
    assert "acc=0.5" in rep.stdout
    report = (tmp_path / "report.html").read_text()
    assert 'href="run/figs.html"' in report and "acc" in report and "0.5" in report


def test_record_keeps_short_values_inline_and_traces_apart(tmp_path, capsys):
    record({"summary": {"acc": 0.25}, "curve": [0.1, 0.2], "episodes": [{"t": "x" * 100}] * 1000},
           {"seed": 1}, tmp_path, notebook_id="t")
    assert capsys.readouterr().out.strip() == "acc: 0.25"
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["metrics"]["curve"] == [0.1, 0.2]
    assert data["metrics"]["episodes"]["$trace"] == "results.traces.json.gz"
    assert data["traces"] == {"file": "results.traces.json.gz", "keys": ["episodes"]}
    full = load_results(tmp_path)
    assert full["metrics"]["episodes"] == [{"t": "x" * 100}] * 1000 and full["metrics"]["curve"] == [0.1, 0.2]
    # a rerun without long values leaves no stale traces file behind
    record({"summary": {"acc": 0.5}}, {"seed": 1}, tmp_path, notebook_id="t", print_summary=False)
    assert not (tmp_path / "results.traces.json.gz").exists()
    assert "traces" not in json.loads((tmp_path / "results.json").read_text())


def test_kernel_options_run_the_setup_and_keep_widget_state_while_running():
    opts = export.papermill_options("python3")
    assert opts["store_widget_state"] is True  # Output widgets need it; compact_notebook strips it
    assert any("exec_lines" in a and "setup_kernel" in a for a in opts["extra_arguments"])


def _sources(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("nb_path", sorted((REPO_ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_notebook_leaves_figure_rendering_to_the_run(nb_path):
    """What makes figures render is the kernel setup of a run: a notebook must run on an ipykernel
    kernel and must not pick its own renderer (which would bypass the exportable HTML view)."""
    nb = nbformat.read(nb_path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name", "python3") == "python3"
    src = _sources(nb_path)
    assert not re.search(r"renderers\.default|\.show\([^)]*renderer\s*=|plotly\.offline\.iplot|init_notebook_mode",
                         src), "choose no plotly renderer in a notebook: `workbench run` sets an exportable one"
    assert "widgets" not in nb.metadata, "a checked-in notebook carries no widget state"
