"""MkDocs hook of the documentation site (``hooks:`` in ``mkdocs.yml``): no network.

mkdocs-jupyter renders notebooks with nbconvert's template, which adds a MathJax
loader and a Mermaid loader that import from a CDN. The site renders math with
the vendored KaTeX instead (``docs/assets/katex``) and has no Mermaid diagrams, so
:func:`on_post_page` removes those scripts from every notebook page. It also points
the notebooks' links to ``../docs/NAME.md`` (right in the repository) at the
site's page of that name.
``tests/test_docs_site.py`` checks that no built page loads anything from
another host.
"""
from __future__ import annotations

import glob
import os
import re

from mkdocs.structure.files import File

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)
NETWORK_LOADERS = ("MathJax", "mathjax", "mermaid")
DOCS_LINK = re.compile(r'href="\.\./docs/([\w-]+)\.md(#[^"]*)?"')


def _keep(match) -> str:
    attributes, body = match.group(1), match.group(2)
    empty_src = re.search(r"""\bsrc=(""|'')""", attributes)
    if empty_src or any(word in body or word in attributes for word in NETWORK_LOADERS):
        return ""
    return match.group(0)


def on_post_page(output: str, page, config) -> str:
    """Drop the MathJax and Mermaid loaders from notebook pages."""
    if page.file.src_uri.endswith(".ipynb"):
        output = re.sub(r"<!-- MathJax configuration -->|<!-- End of mathjax "
                        r"configuration -->", "", SCRIPT.sub(_keep, output))
        output = DOCS_LINK.sub(
            lambda m: f'href="../../{m.group(1)}/{m.group(2) or ""}"', output)
    return output


def on_files(files, config):
    """Add the committed result figures (``results/**/*.png``) to the site."""
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    for path in sorted(glob.glob(os.path.join(root, "results", "**", "*.png"),
                                 recursive=True)):
        files.append(File(os.path.relpath(path, root), src_dir=root,
                          dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """``../results/...`` (right from ``docs/`` in the repository) -> ``results/...``."""
    return markdown.replace("](../results/", "](results/")
