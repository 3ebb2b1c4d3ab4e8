"""mkdocs hooks: pages whose one source of truth lives outside docs/.

The repository's own Markdown files (ERRATA.md, VERIFY.md, ...) and the
notebooks are pages of the site without being copied into docs/: each is
added as a virtual file that reads the repository file (``File.generated``
with ``abs_src_path``), so an edit of the file is an edit of the page.

Their relative links are written for the repository (``docs/verify/x.png``,
``ERRATA.md``, ``tests/test_flow.py``); they are rewritten for the page's
place in the site: a file under docs/ or one of the pages below becomes a
link to it, a repository file that is not in the site becomes plain text
(there is no repository URL to send it to), and anything else is left for
mkdocs' link check, so a broken link in a root file fails ``--strict``.

Two kinds of page join the nav by themselves, so that a file added by
someone else is never missing from the site: every notebook (in the
Notebooks section) and every module of the package without a page in
docs/api/ (a generated ``::: module`` page, in the API reference).  A page
of :data:`PENDING` joins once its source exists.
"""

from __future__ import annotations

import ast
import posixpath
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]

# site path -> repository path
PAGES = {
    "paper/errata.md": "ERRATA.md",
    "paper/verification.md": "VERIFY.md",
    "paper/extended.md": "experiments/README.md",
    "benchmarks.md": "BENCHMARKS.md",
    "changelog.md": "CHANGELOG.md",
    "notebooks/index.md": "notebooks/README.md",
}
NOTEBOOKS = "notebooks"  # every notebooks/*.ipynb is the page notebooks/NAME.ipynb
# site path -> (nav section, title, repository path): pages of files being written elsewhere
PENDING = {
    "paper/multi-neuron.md": ("The paper", "Multi-neuron DEQs", "MULTI_NEURON.md"),
}
API_SECTIONS = {"sideq.paper": "Paper application", "sideq": "Library"}  # package -> its section of the API reference

_LINK = re.compile(r"(!?\[[^\]\n]*\])\(([^)\s]+)\)")
_REF = re.compile(r"^(\s*\[[^\]\n]+\]:\s*)(\S+)", re.M)
_FENCE = re.compile(r"^\s*(```|~~~)")
_IMAGE = (".png", ".svg", ".jpg", ".jpeg", ".gif")
EXPORTS_MARKER = "<!-- sideq-exports -->"


def _sources() -> dict[str, str]:
    pages = dict(PAGES)
    pages.update({site: repo for site, (_, _, repo) in PENDING.items() if (ROOT / repo).is_file()})
    for nb in sorted((ROOT / NOTEBOOKS).glob("*.ipynb")):
        rel = nb.relative_to(ROOT).as_posix()
        pages[rel] = rel
    return pages


def _section(nav, title):
    """The list of the nav section ``title`` (searched at any depth), or None."""
    for entry in nav or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if isinstance(value, list):
                    if key == title:
                        return value
                    found = _section(value, title)
                    if found is not None:
                        return found
    return None


def _named(nav) -> set[str]:
    """Every page path the nav names."""
    out = set()
    for entry in nav or []:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            out |= _named(value) if isinstance(value, list) else {value}
    return out


def api_pages() -> dict[str, str]:
    """site path -> module, for every public module of the package that has no
    page of its own in docs/api/ (``sideq/paper/multi.py`` -> ``api/paper/multi.md``)."""
    out = {}
    for path in sorted((ROOT / "sideq").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(part.startswith("_") for part in parts):
            continue
        page = posixpath.join("api", *parts[1:]) + ".md"
        if not (ROOT / "docs" / page).is_file():
            out[page] = ".".join(parts)
    return out


def on_config(config):
    """Every notebook, every module's API page and every existing PENDING page
    in the nav: those it does not name are appended to their section
    (notebooks titled by their file name, 01_quickstart -> Quickstart)."""
    named = _named(config.nav)
    notebooks = _section(config.nav, "Notebooks")
    for nb in sorted((ROOT / NOTEBOOKS).glob("*.ipynb")):
        rel = nb.relative_to(ROOT).as_posix()
        if notebooks is not None and rel not in named:
            notebooks.append({re.sub(r"^\d+_", "", nb.stem).replace("_", " ").capitalize(): rel})
    for page, module in api_pages().items():
        package = module.rsplit(".", 1)[0]
        section = _section(config.nav, API_SECTIONS.get(package, "Library"))
        if section is not None and page not in named:
            section.append({module: page})
    for page, (title, label, repo) in PENDING.items():
        section = _section(config.nav, title)
        if section is not None and page not in named and (ROOT / repo).is_file():
            section.append({label: page})
    return config


@event_priority(100)  # before mkdocs-jupyter wraps the notebooks
def on_files(files, config):
    for site_path, repo_path in _sources().items():
        source = ROOT / repo_path
        if not source.is_file() or files.get_file_from_path(site_path) is not None:
            continue
        if site_path == repo_path:  # a file of the repository as it is (the notebooks)
            files.append(
                File(
                    site_path, src_dir=str(ROOT), dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls
                )
            )
        else:
            files.append(File.generated(config, site_path, abs_src_path=str(source)))
    for page, module in api_pages().items():
        if files.get_file_from_path(page) is None:
            files.append(File.generated(config, page, content=f"::: {module}\n"))
    return files


def exports_table() -> str:
    """The names of ``sideq/__init__.py``'s ``_EXPORTS`` as a Markdown table,
    each a cross-reference to the object where its module defines it."""
    tree = ast.parse((ROOT / "sideq" / "__init__.py").read_text(encoding="utf-8"))
    exports, submodules = {}, ()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names = [getattr(t, "id", None) for t in node.targets]
            if "_EXPORTS" in names:
                exports = ast.literal_eval(node.value)
            if "_SUBMODULES" in names:
                submodules = ast.literal_eval(node.value)
    rows = ["| name | defined in |", "| --- | --- |"]
    for module, names in exports.items():
        for name in names:
            rows.append(f"| [`sideq.{name}`][{module}.{name}] | [`{module}`][{module}] |")
    for name in submodules:
        rows.append(f"| [`sideq.{name}`][sideq.{name}] | (a module) |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    if EXPORTS_MARKER in markdown:
        markdown = markdown.replace(EXPORTS_MARKER, exports_table())
    repo_path = _sources().get(page.file.src_uri)
    if repo_path is None or not repo_path.endswith(".md"):
        return markdown
    site_of = {repo: site for site, repo in _sources().items()}
    here = posixpath.dirname(page.file.src_uri)

    def rewrite(target: str) -> str | None:
        """The link for the site, or None to drop the link and keep its text."""
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "/")):
            return target
        path, _, fragment = target.partition("#")
        repo_target = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path))
        if repo_target in site_of:
            new = posixpath.relpath(site_of[repo_target], here or ".")
        elif repo_target.startswith("docs/"):
            new = posixpath.relpath(repo_target[len("docs/") :], here or ".")
        elif (ROOT / repo_target).exists():
            return None
        else:
            return target  # broken in the repository too: mkdocs reports it
        return new + ("#" + fragment if fragment else "")

    def inline(match: re.Match) -> str:
        label, target = match.groups()
        new = rewrite(target)
        if new is None:
            return label[1:-1] if not label.startswith("!") else match.group(0)
        if label == f"[{target}]" and target.lower().endswith(_IMAGE) and new != target:
            return f"![{target}]({new})"  # a figure named by its path: show it
        return f"{label}({new})"

    def reference(match: re.Match) -> str:
        new = rewrite(match.group(2))
        return match.group(0) if new is None else match.group(1) + new

    out, fenced = [], False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        if not fenced:
            line = _REF.sub(reference, _LINK.sub(inline, line))
        out.append(line)
    return "\n".join(out)
