"""Every notebook follows the house conventions (CONTRIBUTING.md): a parameters cell papermill can
read in full, the common parameters, a checked last cell nbval can compare, no committed widget state."""
import ast
from pathlib import Path

import nbformat
import pytest

from workbench.nbtools import CHECK_MARK, notebook_parameters

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p for p in NB_DIR.glob("*.ipynb") if not p.name.endswith(".executing.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    assigned = [t.id for n in ast.parse(params[0].source).body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)]
    seen = notebook_parameters(path)
    missing = sorted(set(assigned) - set(seen))
    assert not missing, f"papermill cannot read parameter line(s) {missing} (no '=' inside comments)"
    assert {"seed", "out_dir"} <= set(seen)
    for name, p in seen.items():
        assert p["help"], f"parameter {name} has no trailing comment"
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.source.lstrip().startswith(CHECK_MARK) and "record(" in last.source
    assert last.outputs and last.execution_count, "the checked cell must be frozen with its output"
    tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
    assert "injected-parameters" not in tags
    assert "widgets" not in nb.metadata
    meta = nb.metadata.get("workbench", {})
    assert meta.get("title") and isinstance(meta.get("runtime_s"), (int, float))
    assert path.stat().st_size < 1_000_000
    other = [c for c in nb.cells if c.cell_type == "code" and c is not last and c.outputs]
    assert not other, "only the checked cell keeps outputs"
