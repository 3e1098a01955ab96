// Render the site's math with the KaTeX that symbptt bundles (symbptt/pictures/katex, copied
// into _static by conf.py), so that a built site shows its formulas without a network. Sphinx
// writes inline math as <span class="math">\(...\)</span> and displayed math as
// <div class="math">\[...\]</div>, the latter possibly with an equation number (span.eqno).
(function () {
  function render() {
    for (const el of document.querySelectorAll("span.math, div.math")) {
      const display = el.tagName === "DIV";
      let tex = "";
      for (const node of [...el.childNodes]) {
        if (node.nodeType === Node.TEXT_NODE) {
          tex += node.textContent;
          node.remove();
        }
      }
      tex = tex.trim().replace(/^\\[([]/, "").replace(/\\[)\]]$/, "");
      const out = document.createElement(display ? "div" : "span");
      katex.render(tex, out, {displayMode: display, throwOnError: false, strict: false});
      el.append(out);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
