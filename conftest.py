"""Root conftest: applies to tests/ and to the notebooks collected by nbval."""


def pytest_collection_modifyitems(session, config, items):
    # nbval waits only 5 s (hard-coded on each cell item) for a finished cell's outputs to arrive on the
    # iopub channel; on a busy machine a long cell's last messages can take longer, failing a correct
    # notebook ("Timeout of 5 seconds exceeded waiting for output").
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 120
