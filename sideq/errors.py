"""Exceptions raised at the user's boundary.

Every message is one line: the argument, what was given, what was expected and
the fix.  The CLI prints ``str(err)`` and exits non-zero without a traceback.
"""


class SideqInputError(ValueError):
    """Bad input at a public entry point (shape, value, name, file)."""


class SingularModelError(SideqInputError):
    """θ2 = 1 for the linear DEQ: y = θ1ᵀx + θ2 y has no (or infinitely many) solutions."""
