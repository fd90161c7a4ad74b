// Render the math of every page with the vendored KaTeX (docs/assets/katex): no network.
// Markdown pages carry \( \) and \[ \] (pymdownx.arithmatex); notebooks carry $ and $$.
document.addEventListener("DOMContentLoaded", function () {
  renderMathInElement(document.body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
      { left: "$", right: "$", display: false },
    ],
    throwOnError: false,
  });
});
