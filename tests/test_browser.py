"""End to end: the quick start in JupyterLab, in headless Chromium, shows a live dashboard.

Needs Debian's ``chromium`` (``.ci/run`` installs it); Playwright drives it over
CDP, and nothing is downloaded at run time.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parent.parent / "notebooks" / "01_quickstart.ipynb"
CHROMIUM = os.environ.get("WSR_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `apt-get install chromium` "
                       "(as .ci/run does) or set WSR_CHROMIUM to enable the browser test"),
    pytest.mark.timeout(240),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving a clean copy of the quick start."""
    import nbformat  # here, not with the module: it takes a second of CPU to import

    notebook = nbformat.read(QUICKSTART, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    root = tmp_path / "lab"
    root.mkdir()
    nbformat.write(notebook, root / QUICKSTART.name)
    # Render every cell as it runs (JupyterLab 4 otherwise defers cells out of view).
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    with log.open("w") as log_file:  # the server keeps its own handle
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0", "--allow-root",
             f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
             f"--LabApp.user_settings_dir={tmp_path / 'settings'}"],
            env=os.environ | {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield f"{base}/lab/tree/{QUICKSTART.name}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def counter(text: str, name: str) -> int:
    match = re.search(rf"\b{name} (\d+)", text)
    assert match, text
    return int(match.group(1))


def test_the_quickstart_dashboard_renders_and_counts_in_chromium(
    jupyterlab: str, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(jupyterlab)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                " === 'idle'",
                timeout=90_000,
            )
            # Not awaited: the promise settles only once every cell has run.
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            header = page.locator(".widget-html", has_text="generation").first
            header.wait_for(timeout=90_000)
            counters = page.locator(".widget-html", has_text="received").first
            counters.wait_for(timeout=30_000)
            first = counter(counters.inner_text(), "ok")
            deadline = time.monotonic() + 30
            while counter(counters.inner_text(), "ok") <= first:
                if time.monotonic() > deadline:
                    page.screenshot(path=str(tmp_path / "stuck.png"), full_page=True)
                    pytest.fail(f"the dashboard's counters did not move from ok {first}: "
                                f"{header.inner_text()} / {counters.inner_text()}")
                page.wait_for_timeout(250)
            assert "CONNECTED" in header.inner_text() or "STOPPED" in header.inner_text()
            streams = page.locator(".widget-html table").first
            assert "trade" in streams.inner_text()
            dashboard = page.locator(".widget-vbox", has=header).first
            dashboard.scroll_into_view_if_needed()
            dashboard.screenshot(path=str(tmp_path / "dashboard.png"))
        finally:
            browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 2_000
