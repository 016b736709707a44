"""Root conftest: applies to tests/ and to the notebooks collected by nbval.

Besides nbval's own cell items, every collected notebook gets one more item, ``html export``, after
its last cell: from the outputs the cells produced in this run it builds the executed notebook,
exports it to HTML the way ``workbench run`` does (workbench/export.py) and checks that the HTML draws
as many plotly figures as the notebook shows, and that the run folder (executed notebook, HTML,
results.json and its traces) stays within :data:`workbench.export.RUN_FOLDER_BUDGET_BYTES`. So the
notebook suite checks the exports at no extra execution cost. nbval's kernels run the same kernel
setup as a run (plotly's HTML view, widget snapshots) through an IPython startup file.
"""
import os
import tempfile
import time
from pathlib import Path

import pytest

_EXPORTS: list[str] = []  # one line per checked notebook, printed at the end of the run
_KERNEL_STARTUP = "__import__('workbench.export').export.setup_kernel()\n"


def pytest_configure(config):
    if not any(str(a).endswith((".ipynb", "notebooks", "notebooks/")) for a in config.args):
        return
    ipdir = Path(tempfile.mkdtemp(prefix="wb-ipython-"))
    startup = ipdir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-workbench-kernel.py").write_text(_KERNEL_STARTUP)
    os.environ["IPYTHONDIR"] = str(ipdir)  # nbval's kernels inherit it


class NotebookExportItem(pytest.Item):
    """Checks the HTML export and the run-folder size of the notebook its sibling cells just ran."""

    def __init__(self, *, cells, **kw):
        super().__init__(**kw)
        self.cells = cells
        self.started = time.time()

    def runtest(self):
        import nbformat

        from workbench import export

        if any(getattr(c, "test_outputs", None) is None for c in self.cells):
            pytest.skip("a cell of the notebook did not run")
        src = nbformat.read(str(self.parent.fspath), as_version=4)
        code = [c for c in src.cells if c.cell_type == "code"]
        assert len(code) == len(self.cells)
        for cell, item in zip(code, self.cells):
            cell.outputs = [nbformat.from_dict(_as_output(o)) for o in item.test_outputs]
        nb_id = Path(str(self.parent.fspath)).stem
        with tempfile.TemporaryDirectory() as d:
            executed, page = Path(d) / f"{nb_id}.ipynb", Path(d) / f"{nb_id}.html"
            nbformat.write(src, executed)
            export.finish_run_folder(executed, page)
            shown = export.notebook_figure_count(nbformat.read(executed, as_version=4))
            drawn = export.html_figure_count(page.read_text())
            assert drawn == shown, f"{nb_id}: the HTML export draws {drawn} plotly figure(s), the notebook shows {shown}"
            executed_size = executed.stat().st_size
            size = executed_size + page.stat().st_size + _results_bytes(nb_id, self.started)
        _EXPORTS.append(f"{nb_id}: {drawn} of {shown} plotly figure(s) drawn in the HTML export; run folder "
                        f"about {size / 1e6:.2f} MB (executed notebook {executed_size / 1e6:.2f} MB)")
        assert size < export.RUN_FOLDER_BUDGET_BYTES, (
            f"{nb_id}: run folder {size / 1e6:.1f} MB > budget {export.RUN_FOLDER_BUDGET_BYTES / 1e6:.1f} MB")

    def reportinfo(self):
        return self.path, None, f"{self.parent.name}::html export"


def _as_output(o: dict) -> dict:
    """nbval's collected output dict as an nbformat output."""
    out = {k: v for k, v in o.items() if k in ("output_type", "name", "text", "data", "metadata", "ename",
                                             "evalue", "traceback", "execution_count")}
    if out.get("output_type") == "execute_result":
        out.setdefault("execution_count", None)
        out.setdefault("metadata", {})
    if out.get("output_type") == "display_data":
        out.setdefault("metadata", {})
        out.pop("execution_count", None)
    return out


def _results_bytes(nb_id: str, since: float) -> int:
    """Size of the results.json (+ traces) the notebook wrote in this run (its out_dir=None default)."""
    from workbench.results import TRACES_FILE, default_out_dir

    d = default_out_dir(nb_id)
    files = [d / "results.json", d / TRACES_FILE]
    return sum(f.stat().st_size for f in files if f.is_file() and f.stat().st_mtime >= since - 1)


def pytest_collection_modifyitems(session, config, items):
    # nbval waits only 5 s (hard-coded on each cell item) for a finished cell's outputs to arrive on the
    # iopub channel; on a busy machine a long cell's last messages can take longer, failing a correct
    # notebook ("Timeout of 5 seconds exceeded waiting for output").
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 120
    # one export check after each notebook's last cell
    out, i = [], 0
    while i < len(items):
        item = items[i]
        parent = getattr(item, "parent", None)
        if not hasattr(item, "output_timeout") or not str(getattr(parent, "fspath", "")).endswith(".ipynb"):
            out.append(item)
            i += 1
            continue
        cells = []
        while i < len(items) and getattr(items[i], "parent", None) is parent:
            cells.append(items[i])
            i += 1
        out += cells
        out.append(NotebookExportItem.from_parent(parent, name="html export", cells=cells))
    items[:] = out


def pytest_terminal_summary(terminalreporter):
    if _EXPORTS:
        terminalreporter.section("notebook HTML exports")
        for line in _EXPORTS:
            terminalreporter.write_line(line)
