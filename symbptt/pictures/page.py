"""An interactive derivation page: one self-contained HTML file with the unrolled graph as SVG
(Graphviz), the verified derivation beside it, and every path's term. Clicking a node lights the
paths through it and lists their terms; clicking the background lights them all again.

Math is rendered in the browser by KaTeX, inlined from the copy bundled with symbptt (the npm
package katex, symbptt/pictures/katex/), so the page needs no network when it is viewed. Every
formula on it comes from `symbptt.derivation.derivation`, which checks each one numerically
against the engine before anything is written.
"""

from __future__ import annotations

import base64
import json
import re
from html import escape
from importlib import resources

from ..models.spec import ModelSpec

__all__ = ["page"]


def _katex() -> tuple[str, str]:
    """KaTeX's script, and its style sheet with the woff2 fonts inlined as data URIs (the
    woff and ttf fallbacks dropped: every browser KaTeX supports reads woff2)."""
    folder = resources.files(__package__) / "katex"
    script = (folder / "katex.min.js").read_text(encoding="utf-8")
    css = (folder / "katex.min.css").read_text(encoding="utf-8")

    def inline(match: re.Match) -> str:
        name = match.group(1)
        data = base64.b64encode((folder / "fonts" / f"{name}.woff2").read_bytes()).decode()
        return f'url(data:font/woff2;base64,{data}) format("woff2")'

    css = re.sub(
        r"url\(fonts/([A-Za-z0-9_-]+)\.woff2\) format\(\"woff2\"\)(,url\(fonts/[^)]+\) "
        r"format\(\"[a-z]+\"\))*",
        inline,
        css,
    )
    if "url(fonts/" in css:  # a font reference this rewrite did not foresee: no network use
        css = re.sub(r",?url\(fonts/[^)]+\) format\(\"[a-z]+\"\)", "", css)
    # Guard against a closing tag inside the inlined code.
    return script.replace("</script", "<\\/script"), css.replace("</style", "<\\/style")


def page(
    spec: ModelSpec,
    T: int = 3,
    wrt: str = "W_h",
    *,
    convention: str = "row",
) -> str:
    """The interactive page of dL/d(wrt) for T steps, as HTML text (needs Graphviz's dot)."""
    from ..derivation import derivation
    from ..derivation.printers import LatexPrinter
    from ..errors import InvalidArgumentError
    from .graph import MAX_T, graph_figure, render

    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise InvalidArgumentError(f"T={T!r} must be a whole number from 1 to {MAX_T}")
    result = derivation(T, wrt, model=spec, convention=convention)
    name = result.wrt[0]
    figure = graph_figure(spec, T, name, convention=convention)
    svg = render(figure, "svg").decode("utf-8")
    svg = svg[svg.index("<svg") :]  # the element only, without the XML prologue
    tex = LatexPrinter(result.names)
    paths = [
        {
            "nodes": list(term.path.nodes),
            "entry": term.path.entry_step,
            "loss": term.path.loss_step,
            "tex": tex.doprint(term.expr),
        }
        for term in result.paths.get(name, [])
    ]
    data = {
        "wrt": name,
        "T": T,
        "count": figure.paths,
        "paths": paths,
        "caption": figure.caption,
        # the highlighted subgraph, for counting and lighting the paths through any node
        "order": list(figure.order),
        "edges": [list(e) for e in figure.lit_edges],
        "roots": list(figure.roots),
        "end": figure.end,
        "labels": dict(figure.labels),
    }
    script, css = _katex()
    body = result.document.html_body()
    payload = json.dumps(data).replace("</", "<\\/")
    title = escape(f"symbptt: dL/d{name}, T = {T} ({spec.title or spec.name})")
    return _TEMPLATE.format(
        title=title,
        katex_css=css,
        katex_js=script,
        svg=svg,
        body=body,
        data=payload,
        style=_STYLE,
        code=_CODE,
        caption=escape(figure.caption),
    )


_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; }
header { padding: 0.6em 1em; border-bottom: 1px solid #ddd; }
main { display: flex; gap: 1em; padding: 0 1em; }
#graph { flex: 1 1 55%; position: sticky; top: 0; align-self: flex-start; max-height: 100vh;
  overflow: auto; }
#graph svg { width: 100%; height: auto; }
#side { flex: 1 1 45%; max-height: 100vh; overflow: auto; }
#graph .node { cursor: pointer; }
#graph .edge path { stroke: #c8c8c8; fill: none; stroke-width: 1; }
#graph .edge polygon { stroke: #c8c8c8; fill: #c8c8c8; }
#graph .edge text { fill: #b0b0b0; }
#graph .node path, #graph .node polygon { stroke: #b0b0b0; stroke-width: 1; }
#graph .edge.lit path { stroke: #c0392b; fill: none; stroke-width: 2.5; }
#graph .edge.lit polygon { stroke: #c0392b; fill: #c0392b; }
#graph .edge.lit text { fill: #c0392b; }
#graph .node.lit path, #graph .node.lit polygon { stroke: #c0392b; stroke-width: 2.5; }
#graph .node.chosen path, #graph .node.chosen polygon { fill: #fdebd0; }
#paths ol { padding-left: 1.5em; }
#paths li { margin: 0.4em 0; }
#paths .route { font-size: 0.8em; color: #666; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 0.2em 0.5em; }
#side { min-width: 0; }
/* Every displayed formula scrolls sideways in its own box, never clipped by the column: */
.math { position: relative; }
.math.display { overflow-x: auto; overflow-y: hidden; max-width: 100%; margin: 0.5em 0;
  padding: 0.2em 0; }
.math.display > .katex-display { margin: 0; }
#derivation table { display: block; max-width: 100%; overflow-x: auto; }
"""

_CODE = """
(function () {
  const data = JSON.parse(document.getElementById("paths-data").textContent);
  for (const el of document.querySelectorAll("[data-tex]")) {
    katex.render(el.dataset.tex, el, {
      displayMode: el.classList.contains("display"), throwOnError: true, strict: false});
  }
  const titled = (selector) => {
    const out = new Map();
    for (const g of document.querySelectorAll("#graph " + selector)) {
      const title = g.querySelector("title");
      if (title) out.set(title.textContent, g);
    }
    return out;
  };
  const nodes = titled("g.node"), edges = titled("g.edge");
  const succ = new Map(data.order.map(n => [n, []]));
  const pred = new Map(data.order.map(n => [n, []]));
  for (const [a, b] of data.edges) { succ.get(a).push(b); pred.get(b).push(a); }
  // paths counted on the highlighted subgraph (every path from the input to the loss)
  const fromSources = (sources) => {
    const ways = new Map();
    for (const n of data.order) {
      const into = pred.get(n).reduce((s, p) => s + ways.get(p), 0);
      ways.set(n, (sources.includes(n) ? 1 : 0) + into);
    }
    return ways;
  };
  const toTarget = (target) => {
    const ways = new Map();
    for (const n of [...data.order].reverse()) {
      ways.set(n, (n === target ? 1 : 0) + succ.get(n).reduce((s, c) => s + ways.get(c), 0));
    }
    return ways;
  };
  const fromRoots = fromSources(data.roots), toEnd = toTarget(data.end);
  const label = (n) => data.labels[n] || n;
  const list = document.getElementById("path-list");
  const heading = document.getElementById("path-heading");
  function light(chosen) {
    let count = data.count, litEdges = new Set(data.edges.map(e => e[0] + "->" + e[1]));
    let litNodes = new Set(data.order);
    if (chosen) {
      const onPath = succ.has(chosen);
      const toMid = onPath ? toTarget(chosen) : new Map();
      const fromMid = onPath ? fromSources([chosen]) : new Map();
      count = onPath ? fromRoots.get(chosen) * toEnd.get(chosen) : 0;
      litEdges = new Set(); litNodes = new Set();
      for (const [a, b] of count ? data.edges : []) {
        if ((fromRoots.get(a) && toMid.get(b)) || (fromMid.get(a) && toEnd.get(b))) {
          litEdges.add(a + "->" + b); litNodes.add(a); litNodes.add(b);
        }
      }
    }
    edges.forEach((g, key) => g.classList.toggle("lit", litEdges.has(key)));
    nodes.forEach((g, key) => {
      g.classList.toggle("lit", litNodes.has(key));
      g.classList.toggle("chosen", key === chosen);
    });
    const listed = chosen ? data.paths.filter(p => p.nodes.includes(chosen)) : data.paths;
    list.replaceChildren();
    for (const p of data.paths.length ? listed : []) {
      const item = document.createElement("li");
      const route = document.createElement("div");
      route.className = "route";
      // the labels are HTML from symbptt (the notation's <sub>, <sup>, <i>, <b>), escaped
      route.innerHTML = p.nodes.map(label).join(" \\u2192 ") +
        " &nbsp;(<i>k</i> = " + p.entry + ", <i>t</i> = " + p.loss + ")";
      const term = document.createElement("div");
      term.className = "math display";
      katex.render(p.tex, term, {displayMode: true, throwOnError: true, strict: false});
      item.append(route, term);
      list.append(item);
    }
    const noun = (n) => n + (n === 1 ? " path" : " paths");
    const where = chosen ? " through " + label(chosen) : "";
    const total = chosen ? count + " of the " + noun(data.count) : noun(count);
    heading.innerHTML = total + " from " + label(data.wrt) + where + " to <i>L</i>" +
      (data.paths.length ? "" : " (their terms are listed for T ≤ 4 and at most 64 paths)") +
      "; click a node, or the background for every path";
    document.body.dataset.lit = String(count);
  }
  nodes.forEach((g, key) => g.addEventListener("click", (event) => {
    event.stopPropagation();
    light(key);
  }));
  document.getElementById("graph").addEventListener("click", () => light(null));
  light(null);
  document.body.dataset.ready = "1";
})();
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{katex_css}</style>
<style>{style}</style>
<script>{katex_js}</script>
</head>
<body>
<header><strong>{title}</strong><br><small>{caption}</small></header>
<main>
<section id="graph">{svg}</section>
<section id="side">
<div id="paths"><h2 id="path-heading"></h2><ol id="path-list"></ol></div>
<div id="derivation">{body}</div>
</section>
</main>
<script type="application/json" id="paths-data">{data}</script>
<script>{code}</script>
</body>
</html>
"""
