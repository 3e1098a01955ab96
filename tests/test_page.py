"""The interactive derivation page (issue 12), in a real headless browser: Debian's Chromium
driven by Selenium through Debian's chromedriver. The page loads from a file with no network,
renders every formula with the bundled KaTeX without a console error, and a click on a node
lights exactly the paths through it (counted independently, from the engine's paths)."""

from __future__ import annotations

import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from symbptt.cli import main
from symbptt.engine.derivatives import Derivation
from symbptt.engine.graph import unroll
from symbptt.models import GRU, LSTM, VANILLA, from_file
from symbptt.models.dims import Dims
from symbptt.models.filespec import gallery_path
from symbptt.pictures.graph import graph_figure, render


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def _open(browser, path):
    browser.get(path.as_uri())
    for _ in range(100):
        if browser.execute_script("return document.body.dataset.ready") == "1":
            return
        time.sleep(0.05)
    raise AssertionError(f"the page never finished: {browser.get_log('browser')}")


def _click(browser, node):
    element = browser.execute_script(
        "return [...document.querySelectorAll('#graph g.node')]"
        ".find(g => g.querySelector('title').textContent === arguments[0])",
        node,
    )
    element.click()
    return int(browser.execute_script("return document.body.dataset.lit"))


def _paths(spec, T):
    graph = unroll(Dims(N=1, D=1, H=1, C=2, T=T), spec=spec, max_seconds=None)
    return Derivation(graph, [], [], {}).paths("W_h")


_GRU_FILE = from_file(gallery_path("gru_update"))


@pytest.mark.parametrize(
    "spec, T, argv",
    [
        (VANILLA, 3, []),
        (VANILLA, 3, ["--convention", "column"]),
        (LSTM, 2, ["--model", "lstm"]),
        (GRU, 3, ["--model", "gru"]),  # 81 paths: lit and counted, their terms not listed
        (_GRU_FILE, 2, ["--model", str(gallery_path("gru_update"))]),  # a model file's page
    ],
)
def test_the_page_renders_and_a_click_lights_the_paths_through_a_node(
    tmp_path, capsys, browser, spec, T, argv
):
    out = tmp_path / "page.html"
    assert main(["html", "--T", str(T), "--wrt", "W_h", "-o", str(out), *argv]) == 0
    html = out.read_text()
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing fetched at view time
    assert "https://" not in html
    _open(browser, out)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    assert not browser.find_elements(By.CSS_SELECTOR, ".katex-error")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".katex")) > 20
    paths = _paths(spec, T)
    assert int(browser.execute_script("return document.body.dataset.lit")) == len(paths)
    for node in ("h_2", "a_1", "L_2"):
        expected = sum(node in p.nodes for p in paths)
        assert _click(browser, node) == expected > 0, node
        listed = expected if len(paths) <= 64 else 0
        assert len(browser.find_elements(By.CSS_SELECTOR, "#path-list li")) == listed
        lit = browser.find_elements(By.CSS_SELECTOR, "#graph g.edge.lit")
        want = {(a, b) for p in paths if node in p.nodes for a, b in zip(p.nodes, p.nodes[1:])}
        assert len(lit) == len(want)
    # a click on the background (not on a node) lights every path again
    browser.execute_script("document.getElementById('graph').click()")
    assert int(browser.execute_script("return document.body.dataset.lit")) == len(paths)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_the_page_command_refuses_what_it_cannot_write(tmp_path, capsys):
    assert main(["html", "--T", "2"]) == 2
    assert "-o FILE.html" in capsys.readouterr().err
    out = tmp_path / "p.html"
    out.write_text("mine")
    assert main(["html", "--T", "2", "-o", str(out)]) == 2
    assert out.read_text() == "mine"


def test_the_graph_speaks_the_pages_convention(tmp_path, capsys):
    out = tmp_path / "column.html"
    assert main(["html", "--T", "2", "--convention", "column", "-o", str(out)]) == 0
    html = out.read_text()
    # dh_1 = W_h^T da_2: W_h^⊤ δ, not δ W_h^⊤
    w_h = '<I>W</I><SUB><FONT POINT-SIZE="8"><I>h</I></FONT></SUB>'
    transposed = f'{w_h}<SUP><FONT POINT-SIZE="8">⊤</FONT></SUP>'
    dot = graph_figure(VANILLA, 2, "W_h", convention="column").dot
    assert f"{transposed} <I>δ</I>" in dot and f"<I>δ</I> {transposed}" not in dot
    svg = render(graph_figure(VANILLA, 2, "W_h", convention="column"), "svg").decode()
    assert svg[svg.index("<svg") :] in html  # the page shows the graph of that DOT


# -- no formula is clipped ------------------------------------------------------------------------

#: For every rendered formula (KaTeX's visible `.katex-html`; its MathML copy is hidden for screen
#: readers) the box is the union of its top-level boxes' border boxes, and its container C is the
#: nearest ancestor whose overflow-x is not `visible` (the box that clips it). A formula is not
#: clipped when, along each axis, it lies inside C's visible area (C's padding box, scrollbars
#: excluded), or C scrolls along that axis (overflow auto or scroll, with a scrollbar:
#: scrollSize > clientSize) and the scroll range reaches both ends of the formula. Moreover a
#: displayed formula has a box of its own (C is not the side pane, so a long formula scrolls
#: alone instead of the whole column), every C lies inside the pane's visible width, and the
#: pane itself never scrolls sideways (its scrollWidth is its clientWidth). Returns the
#: problems, the formulas counted and how many need their scrollbar.
_CLIPPED = """
const side = document.getElementById("side");
const inner = (el) => {
  const r = el.getBoundingClientRect();
  const left = r.left + el.clientLeft, top = r.top + el.clientTop;
  return {left, top, right: left + el.clientWidth, bottom: top + el.clientHeight};
};
const pane = inner(side);
const problems = [];
let scrolled = 0, formulas = 0;
if (side.scrollWidth > side.clientWidth) problems.push(["the pane scrolls sideways", ""]);
for (const html of document.querySelectorAll(".katex-html")) {
  const boxes = [...html.children].map(b => b.getBoundingClientRect()).filter(r => r.width > 0);
  if (!boxes.length) continue;
  formulas += 1;
  const box = {
    left: Math.min(...boxes.map(r => r.left)), right: Math.max(...boxes.map(r => r.right)),
    top: Math.min(...boxes.map(r => r.top)), bottom: Math.max(...boxes.map(r => r.bottom))};
  let c = html.parentElement;
  while (c !== document.body && getComputedStyle(c).overflowX === "visible") c = c.parentElement;
  const name = html.textContent.slice(0, 60);
  const style = getComputedStyle(c), seen = inner(c);
  if (c === document.body || (html.closest(".katex-display") && c === side)) {
    problems.push(["not in a box of its own", name]);
    continue;
  }
  if (seen.left < pane.left - 1 || seen.right > pane.right + 1) {
    problems.push(["its box sticks out of the pane", name]);
  }
  const axes = [["X", "left", "right", "scrollLeft", "scrollWidth", "clientWidth"],
                ["Y", "top", "bottom", "scrollTop", "scrollHeight", "clientHeight"]];
  for (const [axis, lo, hi, pos, size, client] of axes) {
    if (box[lo] >= seen[lo] - 1 && box[hi] <= seen[hi] + 1) continue;  // visible as it is
    const origin = seen[lo] - c[pos];  // where the scrolled content starts
    if (!["auto", "scroll"].includes(style["overflow" + axis]) || c[size] <= c[client]) {
      problems.push(["clipped along " + axis + ", no scrollbar", name]);
    } else if (box[lo] < origin - 1 || box[hi] - origin > c[size] + 1) {
      problems.push(["beyond the scroll range along " + axis, name]);
    } else if (axis === "X") {
      scrolled += 1;
    }
  }
}
return [problems, formulas, scrolled];
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--wrt", "W_h"],
        ["--model", "lstm", "--wrt", "W_h"],
        ["--model", "gru", "--wrt", "W_h"],
        ["--wrt", "all"],  # every gradient's derivation on one page
    ],
)
def test_no_formula_is_clipped(tmp_path, capsys, browser, argv):
    out = tmp_path / "page.html"
    assert main(["html", "--T", "3", "-o", str(out), *argv]) == 0
    try:
        # the tests' window, and a narrow one where the RNN's path terms need their scrollbars
        # (the gated cells list no paths at T = 3: their widest formulas fit at 900 px)
        narrow = 0 if {"lstm", "gru"} & set(argv) else 1
        for width, least in ((1600, 0), (900, narrow)):
            browser.set_window_size(width, 1000)
            _open(browser, out)
            problems, formulas, scrolled = browser.execute_script(_CLIPPED)
            assert not problems, (width, problems[:5])
            assert formulas > 80
            assert scrolled >= least  # narrow, some formula needs its scrollbar, and has one
    finally:
        browser.set_window_size(1600, 1000)
