"""Griffe extension: sideq's reST-flavoured docstrings as Markdown for mkdocstrings.

The docstrings are Google style (``Args:``/``Returns:``) with a few reST
constructs that Markdown does not know.  This rewrites them when the package
is loaded (the library's source is never touched):

* roles, :func:`name`, :class:`~sideq.status.Status`, :mod:, :data:, :attr:,
  :meth:, :exc: -- a cross-reference ``[`name`][sideq.module.name]`` when the
  name is a public sideq object that the API pages render; inline code when it
  is private, not rendered, or outside sideq (jax, optax, ...).  A sideq name
  that does not exist at all is logged as a warning (``mkdocs build --strict``
  fails on it) unless it is listed in the ``unresolved_ok`` option;
* ``.. math::`` blocks -- ``$$ ... $$`` for pymdownx.arithmatex;
* literal blocks introduced by ``::`` and ``>>>`` doctest blocks -- fenced code;
* grouped parameters (``gtol, ltol: ...`` in ``Args:``) -- one entry per name,
  each with the shared description, so that griffe can check every name
  against the signature.

Relative names resolve as Sphinx resolves them: in the object's own scope,
then outward to its module (the module's imports included).  ``sideq.NAME``
for a name of the lazy top-level namespace resolves to the module that
defines it (``sideq/__init__.py``'s ``_EXPORTS``).
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import griffe

logger = griffe.get_logger("griffe_rst")

_ROLE = re.compile(r":(func|class|mod|data|attr|meth|exc|obj):`(~?)([^`]+)`")
_GROUPED = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)\s*:\s?(.*)$")
_NOT_A_LINK = re.compile(r"(?<![\\`])\[(?=[^\]\n`]*\]\()")  # E[XXᵀ](φ − ξ) is math, not a link
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):\s*$")


def _top_level_exports(pkg: griffe.Module) -> dict[str, str]:
    """``{name: defining module}`` of ``sideq/__init__.py``'s ``_EXPORTS``."""
    init = Path(pkg.filepath) if not isinstance(pkg.filepath, list) else Path(pkg.filepath[0])
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            exports = ast.literal_eval(node.value)
            return {name: module for module, names in exports.items() for name in names}
    return {}


class RstToMarkdown(griffe.Extension):
    """See the module docstring."""

    def __init__(self, unresolved_ok: list[str] | None = None) -> None:
        self.unresolved_ok = set(unresolved_ok or ())

    # -- entry point -----------------------------------------------------
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        if pkg.name != "sideq":
            return
        self.pkg = pkg
        self.exports = _top_level_exports(pkg)
        for obj in self._walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = self._convert(obj, obj.docstring.value)

    def _walk(self, obj):
        yield obj
        for member in obj.members.values():
            if member.is_alias:
                continue
            yield from self._walk(member)

    # -- the rewrite ------------------------------------------------------
    def _convert(self, obj, text: str) -> str:
        text = self._blocks(text)
        text = self._split_grouped(text)
        text = self._escape_brackets(text)
        return _ROLE.sub(lambda m: self._role(obj, m), text)

    @staticmethod
    def _escape_brackets(text: str) -> str:
        """``E[XXᵀ](φ − ξ)`` would be a Markdown link: escape its ``[``
        (outside code spans and fenced blocks; the docstrings have no links)."""
        out, fenced = [], False
        for line in text.split("\n"):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced:
                parts = line.split("`")
                parts[::2] = [_NOT_A_LINK.sub(r"\\[", p) for p in parts[::2]]
                line = "`".join(parts)
            out.append(line)
        return "\n".join(out)

    def _role(self, obj, match: re.Match) -> str:
        role, tilde, target = match.groups()
        target = target.strip()
        if "<" in target and target.endswith(">"):  # :func:`text <target>`
            shown, target = target[:-1].split("<", 1)
            shown = shown.strip()
        else:
            shown = target.rsplit(".", 1)[-1] if tilde else target
        path = target.removesuffix("()")
        found = self._resolve(obj, path)
        if found is None:
            if path.split(".")[0] == "sideq" or "." not in path:
                if path not in self.unresolved_ok:
                    where = f"{obj.relative_filepath}:{obj.docstring.lineno}"
                    logger.warning(f"{where}: :{role}:`{target}` does not resolve to a sideq object")
            return f"`{shown}`"
        if found is True:
            return f"`{shown}`"  # outside sideq, or not rendered
        return f"[`{shown}`][{found}]"

    def _resolve(self, obj, path: str):
        """The rendered canonical path of ``path`` seen from ``obj``; True for
        a name that exists but is not rendered (private, or outside sideq);
        None for a sideq name that does not exist."""
        head = path.split(".")[0]
        if head != "sideq" and head in {
            "jax",
            "jaxopt",
            "optimistix",
            "optax",
            "diffrax",
            "lineax",
            "numpy",
            "np",
            "scipy",
            "matplotlib",
            "equinox",
            "tqdm",
        }:
            return True
        candidates = []
        if head == "sideq":
            parts = path.split(".")
            if len(parts) >= 2 and parts[1] in self.exports:
                candidates.append(".".join([self.exports[parts[1]], *parts[1:]]))
            candidates.append(path)
        else:
            scope = obj
            while scope is not None:
                if scope.is_module or scope.is_class:
                    candidates.append(f"{scope.path}.{path}")
                scope = scope.parent
        for candidate in candidates:
            target = self._lookup(candidate)
            if target is not None:
                return target
        return None

    def _lookup(self, path: str):
        parts = path.split(".")
        if parts[0] != "sideq":
            return None
        obj = self.pkg
        for part in parts[1:]:
            try:
                obj = obj.members[part]
            except KeyError:
                return None
            if obj.is_alias:
                try:
                    obj = obj.final_target
                except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                    return True  # an import from outside the package
        if not obj.path.startswith("sideq"):
            return True
        return obj.path if self._rendered(obj) else True

    @staticmethod
    def _rendered(obj) -> bool:
        """Whether mkdocstrings (``filters: public``) renders ``obj``."""
        while obj is not None:
            if not obj.is_module and not obj.is_public:
                return False
            if obj.is_module and any(part.startswith("_") for part in obj.path.split(".")):
                return False
            obj = obj.parent
        return True

    # -- blocks ------------------------------------------------------------
    @staticmethod
    def _blocks(text: str) -> str:
        lines = text.split("\n")
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            literal = stripped == ".. math::" or stripped.endswith("::")
            if literal:
                indent = len(line) - len(line.lstrip())
                j = i + 1
                while j < len(lines) and not lines[j].strip():
                    j += 1
                body_start = j
                while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                    j += 1
                body = lines[body_start:j]
                while body and not body[-1].strip():
                    body.pop()
                if body:
                    code = textwrap.dedent("\n".join(body)).split("\n")
                    pad = " " * indent
                    if stripped == ".. math::":
                        out += [pad + "$$", *(pad + c for c in code), pad + "$$", ""]
                    else:
                        lead = line[: len(line) - len(line.lstrip())] + stripped[:-2].rstrip()
                        if lead.strip():
                            out += [lead + ":", ""]
                        out += [pad + "```python", *(pad + c if c else "" for c in code), pad + "```", ""]
                    i = j
                    continue
            if stripped.startswith(">>>"):
                indent = line[: len(line) - len(line.lstrip())]
                j = i
                while j < len(lines) and lines[j].strip():
                    j += 1
                block = [ln[len(indent) :] for ln in lines[i:j]]
                if out and out[-1].strip():
                    out.append("")
                out += [indent + "```pycon", *(indent + b for b in block), indent + "```"]
                i = j
                continue
            out.append(line)
            i += 1
        return "\n".join(out)

    @staticmethod
    def _split_grouped(text: str) -> str:
        lines = text.split("\n")
        out: list[str] = []
        in_args = False
        i = 0
        while i < len(lines):
            line = lines[i]
            if _SECTION.match(line.strip()) and not line.startswith(" "):
                in_args = True
            elif line.strip() and not line.startswith((" ", "\t")):
                in_args = False
            match = _GROUPED.match(line) if in_args else None
            if match:
                indent, names, first = match.groups()
                j = i + 1
                while j < len(lines) and lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) > len(indent):
                    j += 1
                rest = lines[i + 1 : j]
                for name in (n.strip() for n in names.split(",")):
                    out += [f"{indent}{name}: {first}", *rest]
                i = j
                continue
            out.append(line)
            i += 1
        return "\n".join(out)
