"""The documentation site builds with ``mkdocs build --strict`` and works offline.

Skipped (with the reason) when the ``docs`` extra is not installed. The offline
check reads every built page and stylesheet: no script, stylesheet, font, image,
frame or CSS ``url()``/``@import`` may point at another host (an ``<a href>`` to
the paper is a link, not a load, and is allowed).
"""
from __future__ import annotations

import html.parser
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS_PACKAGES = ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings_handlers.python")
EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""", re.IGNORECASE)
# (tag, attribute) pairs that make a browser fetch something
LOADING_ATTRIBUTES = {("script", "src"), ("link", "href"), ("img", "src"),
                      ("iframe", "src"), ("source", "src"), ("embed", "src"),
                      ("object", "data"), ("audio", "src"), ("video", "src")}
LINK_RELS_THAT_LOAD = ("stylesheet", "preload", "modulepreload", "icon", "prefetch",
                       "manifest", "apple-touch-icon")


def _missing_docs_packages() -> list:
    missing = []
    for name in DOCS_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


class _LoadCollector(html.parser.HTMLParser):
    """Every URL a page would fetch: script/img/... sources, stylesheets, inline CSS."""

    def __init__(self):
        super().__init__()
        self.urls = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for attribute in ("src", "href", "data"):
            if (tag, attribute) not in LOADING_ATTRIBUTES or not attrs.get(attribute):
                continue
            rel = (attrs.get("rel") or "").lower()
            if tag == "link" and not any(r in rel for r in LINK_RELS_THAT_LOAD):
                continue  # rel="next", "prev", "canonical": links, not loads
            self.urls.append(attrs[attribute])
        self.urls += CSS_URL.findall(attrs.get("style") or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += CSS_URL.findall(data)


def external_loads(site: Path) -> list:
    """``(file, url)`` for every fetch of another host in the built ``site``."""
    found = []
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            collector = _LoadCollector()
            collector.feed(path.read_text(encoding="utf-8"))
            urls = collector.urls
        elif path.suffix == ".css":
            urls = CSS_URL.findall(path.read_text(encoding="utf-8"))
        else:
            continue
        found += [(str(path.relative_to(site)), u) for u in urls if EXTERNAL.match(u)]
    return found


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    missing = _missing_docs_packages()
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)} missing): "
                    "pip install -e '.[docs]'")
    site = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                          "--site-dir", str(site)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    return site, run


def test_site_builds_strict_without_warnings(built_site):
    site, run = built_site
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    for page in ("index.html", "notebooks/00_start_here/index.html",
                 "notebooks/06_lars_at_large_batch/index.html",
                 "api/optim/index.html", "course/index.html"):
        assert (site / page).is_file(), page


def test_site_renders_executed_notebooks_and_docstrings(built_site):
    site, _ = built_site
    notebook = (site / "notebooks/06_lars_at_large_batch/index.html").read_text("utf-8")
    assert "data:image/png;base64" in notebook          # the committed plots
    assert "LARS step: ok" in notebook                  # the committed outputs
    api = (site / "api/optim/index.html").read_text("utf-8")
    assert "lars_step" in api and "Algorithm 1" in api  # rendered from the docstrings


def test_built_site_loads_nothing_from_another_host(built_site):
    site, _ = built_site
    assert external_loads(site) == []
    katex = site / "assets" / "katex"
    assert (katex / "katex.min.js").is_file()
    assert list((katex / "fonts").glob("*.woff2"))
    page = (site / "notebooks/00_start_here/index.html").read_text("utf-8")
    for script in ("assets/katex/katex.min.js", "assets/katex-init.js",
                   "assets/katex/contrib/auto-render.min.js"):
        assert f'src="../../{script}"' in page, script


def test_every_docs_page_and_notebook_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    docs = ROOT / "docs"
    pages = [p.relative_to(docs).as_posix() for p in docs.rglob("*.md")]
    pages += [f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")]
    assert [p for p in sorted(pages) if f": {p}" not in nav] == []


def test_offline_check_catches_a_cdn_script_a_font_and_a_stylesheet(tmp_path):
    (tmp_path / "page.html").write_text(
        '<html><head><script src="https://cdn.example.org/mathjax.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/css">'
        '<link rel="next" href="https://example.org/next"></head>'
        '<body><a href="https://arxiv.org/abs/1708.03888">paper</a>'
        '<style>@font-face { src: url(https://fonts.example.org/f.woff2) }</style>'
        '</body></html>', encoding="utf-8")
    (tmp_path / "style.css").write_text('@import "https://example.org/x.css";',
                                        encoding="utf-8")
    found = sorted(url for _, url in external_loads(tmp_path))
    assert found == ["//fonts.example.org/css", "https://cdn.example.org/mathjax.js",
                     "https://example.org/x.css", "https://fonts.example.org/f.woff2"]
