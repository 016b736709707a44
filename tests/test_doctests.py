"""Doctests of the core modules (the examples in their docstrings are checked)."""
import doctest
import importlib

import pytest

MODULES = ["workbench.seeding", "workbench.results", "workbench.runs", "workbench.llm",
           "workbench.llm.base", "workbench.llm.backend", "workbench.llm.registry", "workbench.llm.structure",
           "workbench.tasks.math_answers", "workbench.tasks.code_tasks", "workbench.nbtools", "workbench.sweeps",
           "workbench.calibration"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} doctest(s) failed in {name}"
