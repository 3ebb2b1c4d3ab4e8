"""Progress bars of long work (sweeps, reproduce, verify): tqdm on stderr, and
only when stderr is a terminal, so that a pipe or a log file receives the
results alone (``--json`` stays clean)."""

from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm

__all__ = ["bar", "make", "advance", "on_terminal"]


def on_terminal() -> bool:
    """Whether stderr is a terminal (where a bar can be redrawn in place)."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def make(total: int | None, desc: str, unit: str = "it", initial: int = 0, show: bool = True):
    """A tqdm bar (done/total, rate, ETA) on stderr when ``show`` and stderr is
    a terminal, else None.  The caller closes it."""
    if not (show and on_terminal()):
        return None
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


@contextlib.contextmanager
def bar(total: int | None, desc: str, unit: str = "it", show: bool = True):
    """:func:`make` as a context manager: ``with bar(n, "verify", "check") as b:
    ... advance(b)``; the bar is closed on the way out."""
    b = make(total, desc, unit, show=show)
    try:
        yield b
    finally:
        if b is not None:
            b.close()


def advance(b, n: int = 1, note: str | None = None) -> None:
    """``b.update(n)`` (and a note after the counts) when there is a bar."""
    if b is None:
        return
    if note is not None:
        b.set_postfix_str(note, refresh=False)
    b.update(n)
