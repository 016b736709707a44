"""Root conftest: applies to tests/ and to the notebooks collected by nbval."""


def pytest_collection_modifyitems(session, config, items):
    # nbval waits only 5 s (hard-coded) for a finished cell's outputs to arrive on the iopub channel;
    # on a busy machine a cell that printed a large figure can take longer, failing a correct notebook.
    for item in items:
        parent = getattr(item, "parent", None)
        if parent is not None and hasattr(parent, "output_timeout"):
            parent.output_timeout = 120
