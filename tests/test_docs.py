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
