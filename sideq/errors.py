"""Exceptions raised at the user's boundary, and the check of an output folder.

Every message is one line: the argument, what was given, what was expected and
the fix.  The CLI prints ``str(err)`` and exits non-zero without a traceback.
"""

from __future__ import annotations

import os
import tempfile


class SideqInputError(ValueError):
    """Bad input at a public entry point (shape, value, name, file)."""


class EstimatedBoundsWarning(UserWarning):
    """An activation's slope bounds were estimated on a grid, not given: the
    solver will not claim that an equilibrium is unique (``Status.UNVERIFIED``)."""


class SingularModelError(SideqInputError):
    """A start on the singular set: θ2 = 1 for the linear DEQ, where
    y = θ1ᵀx + θ2 y has no (or infinitely many) solutions (Lemma 3.2), or
    I − W2 singular for :func:`sideq.general.multi_linear`."""


def unwritable_folder(folder: str) -> str | None:
    """None if ``folder`` is, or can be made, a folder a file can be written in
    (it is created); else what is wrong and the fix, in one line.  Entry points
    call it before any work, so that a bad output path costs no run.

    Args:
      folder: the folder (``""`` means the current one).

    Returns:
      None, or the one-line problem.
    """
    folder = folder or "."
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"{folder!r} is a file, not a folder; choose a folder to write into"
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"cannot write into {folder!r} ({err.strerror or err}); choose a writable folder"
    return None
