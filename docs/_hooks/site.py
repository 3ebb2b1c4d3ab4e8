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

_LINK = re.compile(r"(!?\[[^\]\n]*\])\(([^)\s]+)\)")
_REF = re.compile(r"^(\s*\[[^\]\n]+\]:\s*)(\S+)", re.M)
_FENCE = re.compile(r"^\s*(```|~~~)")
_IMAGE = (".png", ".svg", ".jpg", ".jpeg", ".gif")
EXPORTS_MARKER = "<!-- sideq-exports -->"


def _sources() -> dict[str, str]:
    pages = dict(PAGES)
    for nb in sorted((ROOT / NOTEBOOKS).glob("*.ipynb")):
        rel = nb.relative_to(ROOT).as_posix()
        pages[rel] = rel
    return pages


def on_config(config):
    """Every notebook in the nav's Notebooks section: those it does not name
    are appended, titled by their file name (01_quickstart -> Quickstart)."""
    for entry in config.nav or []:
        if isinstance(entry, dict) and isinstance(entry.get("Notebooks"), list):
            section = entry["Notebooks"]
            named = {v for item in section for v in (item.values() if isinstance(item, dict) else [item])}
            for nb in sorted((ROOT / NOTEBOOKS).glob("*.ipynb")):
                rel = nb.relative_to(ROOT).as_posix()
                if rel not in named:
                    title = re.sub(r"^\d+_", "", nb.stem).replace("_", " ").capitalize()
                    section.append({title: rel})
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
    repo_path = PAGES.get(page.file.src_uri)
    if repo_path is None:
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
