"""The docs site's structure, checked without building it (mkdocs is not a test
dependency; .ci/run builds the site with ``mkdocs build --strict`` after the
suite).  Fails fast where that build would: a module without its API page, a
page missing from the nav, a repository file the site includes gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def _modules():
    """Every public module of the library and of the paper application."""
    for path in sorted((ROOT / "sideq").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if any(part.startswith("_") for part in rel.parts):
            continue
        yield ".".join(rel.parts)


def _nav_pages():
    return set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.(?:md|ipynb))\s*$", CONFIG, re.M))


def test_every_module_has_an_api_page_in_the_nav():
    modules = list(_modules())
    assert "sideq.scalar" in modules and "sideq.paper.theory" in modules  # the walk finds both layers
    nav = _nav_pages()
    missing = []
    for module in modules:
        page = Path("api", *module.split(".")[1:]).with_suffix(".md").as_posix()
        text = (DOCS / page).read_text(encoding="utf-8") if (DOCS / page).is_file() else ""
        if f"::: {module}" not in text or page not in nav:
            missing.append(f"{module} -> docs/{page}")
    assert not missing, (
        "modules without an API page (docs/api/..., `::: module`, listed in mkdocs.yml nav): " + ", ".join(missing)
    )


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
