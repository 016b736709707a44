#!/usr/bin/env bash
# What `make test-browser` needs: Debian's chromium (Playwright cannot download its own browser here)
# and the `browser` extra (playwright, jupyterlab, voila) in the project venv.
set -euo pipefail
VENV=${1:-.venv}
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  else
    echo "chromium is missing: sudo apt-get install chromium" >&2; exit 1
  fi
fi
"$VENV/bin/python" -m pip install -q -e ".[browser]"
chromium --version
# Playwright must be able to drive this chromium (its protocol follows Chromium's releases): launch it
# once headless, as the tests do, and print the version it reports.
"$VENV/bin/python" - <<'PY'
import shutil
from playwright.sync_api import sync_playwright

with sync_playwright() as p:
    b = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                          args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    print("playwright drives chromium", b.version)
    b.close()
PY
