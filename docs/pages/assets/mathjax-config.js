// MathJax 3, bundled (assets/mathjax/tex-svg-full.js, loaded after this file): SVG output needs no
// web fonts, so the maths typesets offline and from disk. Only prose is typeset: the notebooks'
// Markdown cells ($...$, $$...$$), pymdownx.arithmatex's spans in the Markdown pages and the
// navigation (a notebook's headings hold maths); code and cell outputs are left alone.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "md-main",
    processHtmlClass: "arithmatex|jp-MarkdownOutput|md-nav",
  },
  svg: { fontCache: "global" },
};
