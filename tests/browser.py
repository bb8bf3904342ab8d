"""A real headless browser for layout tests: Chromium from PATH, measuring a page as laid out.

The page is opened as a copy with ``MEASURE`` appended: once loaded, that script writes what the
browser computed (viewport width, the document's scroll width, elements past the right edge
outside a horizontal scroll box, each image's box, each scroll box's content and shown widths,
the first paragraph) into the DOM as JSON, and ``--dump-dom`` prints it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium-headless-shell", "chromium", "google-chrome", "chrome")
INSTALL = (
    "apt-get install --no-install-recommends chromium-headless-shell (Debian 12), "
    "or any Chromium or Chrome on PATH"
)

MEASURE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const width = root.clientWidth;
  const beyond = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1 && !el.closest(".scroll, pre")) {
      beyond.push(el.tagName.toLowerCase() + " right edge " + Math.round(box.right));
    }
  }
  const images = [...document.images].map((img) => {
    const box = img.getBoundingClientRect();
    return {width: box.width, height: box.height, right: box.right, natural: img.naturalWidth};
  });
  const boxes = [...document.querySelectorAll(".scroll")].map((box) => ({
    content: box.scrollWidth, shown: box.clientWidth,
  }));
  const first = document.body.querySelector("p");
  const result = {
    width, scroll_width: root.scrollWidth, beyond, images, boxes,
    first_paragraph: first && {
      class: first.className, bottom: first.getBoundingClientRect().bottom,
    },
  };
  const out = document.createElement("pre");
  out.id = "measured-layout";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def browser_or_skip() -> str:
    """Path of a headless Chromium; skips the test without one, fails it under CI (where
    ``.ci/run`` installs one, so a missing browser is a broken install, not a reason to skip)."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    message = f"no headless Chromium on PATH (looked for {', '.join(BROWSERS)}); install: {INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def measure_layout(browser: str, page_html: str, width: int, height: int, workdir: Path) -> dict:
    """Lay out ``page_html`` in a ``width`` x ``height`` window of ``browser`` and return what
    ``MEASURE`` found: width, scroll_width, beyond (list), images (boxes), boxes (the
    ``.scroll`` boxes' content and shown widths), first_paragraph."""
    workdir.mkdir(parents=True, exist_ok=True)
    page = workdir / f"page-{width}.html"
    page.write_text(page_html.replace("</body>", MEASURE + "</body>"))
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # tests run as root in CI; the page is our own file
            "--disable-gpu",
            f"--user-data-dir={workdir / 'profile'}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",  # let the load event fire before the DOM is printed
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="measured-layout">(.*?)</pre>', run.stdout, re.DOTALL)
    assert found, f"{browser} printed no measurement (exit {run.returncode}): {run.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))
