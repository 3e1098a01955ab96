"""Sphinx configuration of symbptt's documentation site (MyST Markdown, built strictly in CI:
`python -m sphinx -n -W --keep-going -b html docs docs/_build/html`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "symbptt"
author = "the symbptt authors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "audit/*"]
autodoc_typehints = "none"
autodoc_member_order = "bysource"
html_theme = "alabaster"
# Math without a network: KaTeX as symbptt bundles it (its script, style and woff2 fonts, copied
# into _static from symbptt/pictures/katex) renders Sphinx's math elements in the browser;
# mathjax_path, relative to _static, names the small script that calls it.
html_static_path = ["_static", "../symbptt/pictures/katex"]
html_css_files = ["katex.min.css"]
html_js_files = ["katex.min.js"]
mathjax_path = "symbptt-math.js"
html_title = "symbptt"
