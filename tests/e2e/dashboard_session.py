"""What the issue-15 dashboard tests (and scripts/screenshots.py) share: the run with every probe,
Chromium pages that record page errors and every request that would leave the machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import Page

from tests.conftest import Service, wait_for

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}

# digits MLP, full-batch SGD at lr 0.2, every probe: about 10 s of training on an idle two-core CPU.
ALL_PROBES = {
    "name": "all-probes",
    "tags": ["e2e", "probes"],
    "task": {"kind": "digits", "hidden": 32, "train_size": 500},
    "optimizer": {"name": "sgd", "lr": 0.2},
    "steps": 60,
    "log_every": 5,
    "device": "cpu",
    "probes": {
        "hessian": {
            "every": 10, "k": 2, "batch_size": 500, "density": True, "density_steps": 16,
            "trace": True,
        },
        "landscape": {"every": 30, "resolution": 9, "eval_size": 128},
        "collapse": {"every": 10, "max_examples": 500},
        "grokking": {"every": 10},
        "opposing": {"every": 10},
    },
}  # fmt: skip


OpenTab = Callable[..., "Tab"]


@dataclass
class Tab:
    """A Chromium page with what went wrong on it."""

    page: Page
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)  # requests to anywhere but this machine


def worker_ready(service: Service) -> None:
    wait_for(lambda: httpx.get(f"{service.url}/api/health").json()["workers"], 60, "a worker")


PAGE_CHECKS = Path(__file__).with_name("page_checks.js")


def checks(page: Page) -> Page:
    """Adds ``window.pageChecks`` (page_checks.js) to the page's current document, once."""
    if not page.evaluate("() => Boolean(window.pageChecks)"):
        page.add_script_tag(path=str(PAGE_CHECKS))
    return page
