"""The documentation site builds strictly: Sphinx with MyST, every reference resolved, every
warning an error (`-n -W --keep-going`), the API pages from the docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_docs_site_builds_strictly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-n", "-W", "--keep-going", "-q", "-b", "html"]
        + [str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    index = (tmp_path / "html" / "index.html").read_text()
    pages = ("getting-started", "tutorial", "gated", "pictures", "property-testing")
    for page in (*pages, "conventions", "commands/index", "reference"):
        assert f'href="{page}.html"' in index, page
    for command in ("derive", "latex", "audit", "check", "graph", "contributions", "html"):
        captured = (tmp_path / "html" / "commands" / f"{command}.html").read_text()
        assert f"$ symbptt {command}" in captured, command
    tutorial = (tmp_path / "html" / "tutorial.html").read_text()
    assert 'class="eqno"' in tutorial and 'href="#equation-total"' in tutorial  # numbered, linked
    reference = (tmp_path / "html" / "reference.html").read_text()
    assert "check_gradients" in reference and "ModelSpec" in reference
    assert (tmp_path / "html" / "_images" / "contributions.png").exists()
    _math_is_rendered_offline(tmp_path / "html")


def _math_is_rendered_offline(site: Path) -> None:
    """The site's math needs no network: every script and style sheet a page loads is local
    (the only http addresses left are links), KaTeX's files are there with every font its style
    sheet names, and in headless Chromium every formula of the tutorial is rendered."""
    import re
    import time

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    static = site / "_static"
    for page in site.rglob("*.html"):
        text = page.read_text()
        loaded = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="([^"]+)"', text)
        assert not [u for u in loaded if re.match(r"(https?:)?//", u)], page
        assert not [u for u in loaded if "mathjax" in u.lower()], page
    for name in ("katex.min.js", "katex.min.css", "symbptt-math.js"):
        assert (static / name).is_file(), name
    css = (static / "katex.min.css").read_text()
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert len(fonts) > 15 and all((static / f).is_file() for f in fonts)
    tutorial = site / "tutorial.html"
    assert 'src="_static/symbptt-math.js' in tutorial.read_text()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(tutorial.as_uri())
        count = "return [document.querySelectorAll('.math').length, " + (
            "document.querySelectorAll('.math .katex').length, "
            "document.querySelectorAll('.katex-error').length]"
        )
        for _ in range(100):
            formulas, rendered, errors = driver.execute_script(count)
            if rendered == formulas:
                break
            time.sleep(0.05)
        assert formulas >= 6 and rendered == formulas and errors == 0
        assert "\\(" not in driver.find_element("tag name", "body").text
    finally:
        driver.quit()
