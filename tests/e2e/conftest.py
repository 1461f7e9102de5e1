"""Fixtures of the issue-15 dashboard tests: one embedded service and one finished run with every
probe per module, and Chromium tabs at a chosen size and colour scheme."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.conftest import Service
from tests.e2e.dashboard_session import ALL_PROBES, LOCAL_HOSTS, OpenTab, Tab, worker_ready
from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS, EXPECTED_422, IN_CI


@pytest.fixture(scope="module")
def shared_service(
    tmp_path_factory: pytest.TempPathFactory, demo_datasets: Path
) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("dashboard") / "data"
    service = Service(data, datasets=demo_datasets, OBS_FLUSH_SECONDS="0.25")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def probes_run(shared_service: Service) -> int:
    """Id of a completed run that recorded every probe's scalars and arrays."""
    worker_ready(shared_service)
    url = shared_service.submit(ALL_PROBES)
    shared_service.completed(url, timeout=300)
    return int(url.rsplit("/", 1)[1])


@pytest.fixture
def tabs() -> Iterator[OpenTab]:
    """``tabs(width=1280, height=800, scheme="light")`` opens a page in a fresh context; requests
    that would leave the machine are aborted and recorded."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; CI needs it")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )

        def open_tab(width: int = 1280, height: int = 800, scheme: str = "light") -> Tab:
            context = chromium.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            page = context.new_page()
            page.set_default_timeout(20_000)
            tab = Tab(page)

            def guard(route: Route) -> None:
                host = urlparse(route.request.url).hostname or ""
                if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                    route.continue_()
                else:
                    tab.external.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            page.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))
            page.on(
                "console",
                lambda m: (
                    tab.errors.append(f"console: {m.text}")
                    if m.type == "error" and EXPECTED_422 not in m.text
                    else None
                ),
            )
            return tab

        yield open_tab
        chromium.close()
