"""The docs site's structure, checked without building it (mkdocs is not a test
dependency; .ci/run builds the site with ``mkdocs build --strict`` after the
suite).  Fails fast where that build would: an API page of a module that is gone,
a page missing from the nav, a repository file the site includes gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def _nav_pages():
    return set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.(?:md|ipynb))\s*$", CONFIG, re.M))


def test_every_api_page_documents_a_module_that_exists():
    # (a module without a page of its own gets a generated one: docs/_hooks/site.py)
    pages = sorted(p for p in (DOCS / "api").rglob("*.md") if p.name != "index.md")
    assert any(p.name == "scalar.md" for p in pages)  # the walk finds the pages
    stale = []
    for page in pages:
        targets = re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), re.M)
        for module in targets:
            if not (ROOT / Path(*module.split("."))).with_suffix(".py").is_file():
                stale.append(f"{page.relative_to(ROOT)}: {module}")
        if not targets:
            stale.append(f"{page.relative_to(ROOT)}: no '::: module'")
    assert not stale, f"API pages of modules that do not exist: {stale}"


def test_every_page_in_the_nav_exists():
    pages = _nav_pages()
    assert "index.md" in pages and "api/scalar.md" in pages  # the pattern reads the nav
    included = _included_root_files()
    missing = [p for p in pages if not (DOCS / p).is_file() and p not in included and not (ROOT / p).is_file()]
    assert not missing, f"pages named in mkdocs.yml's nav that do not exist: {missing}"


def _included_root_files() -> dict[str, str]:
    """site path -> repository path, from docs/_hooks/site.py's PAGES."""
    hook = (DOCS / "_hooks" / "site.py").read_text(encoding="utf-8")
    block = hook[hook.index("PAGES = {") : hook.index("}", hook.index("PAGES = {"))]
    return dict(re.findall(r'"([^"]+)":\s*"([^"]+)"', block))


def test_repository_files_in_the_site_exist():
    pages = _included_root_files()
    assert pages.get("paper/errata.md") == "ERRATA.md"  # the hook's table is read
    missing = [f"{repo} (page {site})" for site, repo in pages.items() if not (ROOT / repo).is_file()]
    assert not missing, f"files the docs site includes (docs/_hooks/site.py PAGES) are missing: {missing}"
