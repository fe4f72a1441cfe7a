"""Headless Debian Chromium driven by Playwright for the studio tests: where it is, how it is started, and
the screenshots the tests write (build/studio-screenshots/, which the README's picture comes from)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build/studio-screenshots"
# Without the background-networking flags Chromium keeps trying Google's hosts, which this closed network refuses.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
MISSING = ("the studio's browser tests need Debian's Chromium: `apt-get install chromium` (as root; .ci/run "
           "installs it)")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(MISSING)
    return path


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium(), args=FLAGS)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
