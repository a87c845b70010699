"""The web UI driven in headless Chromium (Debian's /usr/bin/chromium, through Playwright):
fill the form, get a plan, see the charts render, see a bad input's message, download the
report. Screenshots go to artifacts/ (kept by CI)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from inferplan.present.web import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("INFERPLAN_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]

if not shutil.which(CHROMIUM):
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def ui_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the UI server did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, ui_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(ui_url)
    pg.wait_for_selector("input[name=gpu]")  # the catalog has loaded into the form
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def fill_workload(pg: Page, model: str = "qwen3-8b") -> None:
    pg.fill("#model", model)
    pg.fill("#isl", "2000")
    pg.fill("#osl", "300")
    pg.select_option("#load-kind", "rate")
    pg.fill("#load-value", "4")
    pg.fill("#ttft", "400")
    pg.fill("#tpot", "40")
    for gpu in ("h100-sxm", "l40s", "a100-sxm-80gb"):
        pg.check(f"input[name=gpu][value='{gpu}']")


def test_fill_the_form_get_a_plan_and_its_charts(page: Page) -> None:
    pg = page
    fill_workload(pg)
    pg.click("#plan-button")
    pg.wait_for_selector("#charts figure[data-chart=cost] svg", timeout=60_000)
    rec = pg.inner_text("#recommendation")
    assert "Recommendation:" in rec and "GPUs" in rec
    assert any(g in rec for g in ("h100-sxm", "l40s", "a100-sxm-80gb"))
    ids = pg.eval_on_selector_all("#charts figure", "els => els.map(e => e.dataset.chart)")
    assert ids == ["memory", "kv_capacity", "roofline", "ttft_vs_rate", "tpot_vs_rate", "pareto", "cost"]
    # the browser laid the SVG out: it has a size and its bars have width
    box = pg.locator("#charts figure[data-chart=memory] svg").bounding_box()
    assert box["width"] > 400 and box["height"] > 200
    bar = pg.locator("#charts figure[data-chart=memory] rect.bar").first.bounding_box()
    assert bar["width"] > 5
    assert pg.locator("#ranked table tbody tr").count() >= 3
    assert not pg.is_visible("#error")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.evaluate("window.scrollTo(0, 0)")
    pg.screenshot(path=str(ARTIFACTS / "ui-plan.png"))
    pg.locator("#charts").screenshot(path=str(ARTIFACTS / "ui-charts.png"))


def test_bad_input_shows_its_message(page: Page) -> None:
    pg = page
    fill_workload(pg)
    pg.fill("#isl", "0")
    pg.click("#plan-button")
    pg.wait_for_selector("#error", state="visible")
    assert "isl (--isl): Input should be greater than or equal to 1" in pg.inner_text("#error")
    assert pg.is_hidden("#result")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "ui-error.png"))
    # a pasted config that is not JSON says where it breaks
    pg.fill("#isl", "2000")
    pg.select_option("#model-source", "pasted")
    pg.fill("#config-json", '{"model_type": "llama",')
    pg.click("#plan-button")
    pg.wait_for_function("document.getElementById('error').textContent.includes('not valid JSON')")
    # an unknown catalog name lists what is known
    pg.select_option("#model-source", "catalog")
    pg.fill("#model", "/etc/passwd")
    pg.click("#plan-button")
    pg.wait_for_function("document.getElementById('error').textContent.includes('unknown model')")


def test_download_the_report(page: Page, tmp_path: Path) -> None:
    pg = page
    fill_workload(pg, "llama-3.1-8b")
    with pg.expect_download(timeout=60_000) as info:
        pg.click("#report-button")
    path = tmp_path / "report.html"
    info.value.save_as(str(path))
    assert info.value.suggested_filename == "inferplan-llama-3.1-8b.html"
    html = path.read_text(encoding="utf-8")
    assert html.count("<figure ") == 7 and "Deployment plan: llama-3.1-8b" in html
