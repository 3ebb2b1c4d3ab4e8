"""Small helpers shared by several test files.

``from helpers import ...`` works from any test file: pytest puts ``tests/`` on
``sys.path`` (there is no ``tests/__init__.py``), as it does for conftest.py.
"""

import io

import numpy as np
import pytest

import sideq
from sideq.cli import main as cli_main
from sideq.paper import verify

# What sideq.xla's docstring promises for the reassociated sums: fast math with
# every IEEE guarantee but the order of operations kept.
XLA_FAST_MATH = {
    "xla_cpu_enable_fast_math": True,
    "xla_cpu_fast_math_honor_nans": True,
    "xla_cpu_fast_math_honor_infs": True,
    "xla_cpu_fast_math_honor_division": True,
    "xla_cpu_fast_math_honor_functions": True,
}


def fake_cpuinfo(text):
    """A stand-in for ``open`` that serves ``text`` as /proc/cpuinfo (and asserts
    that nothing else is opened)."""

    def fake(path, *args, **kwargs):
        assert path == "/proc/cpuinfo"
        return io.StringIO(text)

    return fake


def no_file(path, *args, **kwargs):
    """A stand-in for ``open`` on a machine without the file."""
    raise FileNotFoundError(path)


def raises_input_error(prefix, fn, exc=sideq.SideqInputError):
    """``fn()`` raises ``exc`` whose message starts with ``prefix`` (the argument's name)."""
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value).startswith(prefix), str(info.value)


def linear_empirical_grad(theta, x, y):
    """∇R̂ of the linear DEQ by hand: y_θ(x) = θ1 x/(1 − θ2), R̂ = mean (y_θ − y)², d = 1."""
    t1, t2 = theta
    r = t1 * x / (1 - t2) - y
    return np.array([np.mean(2 * r * x / (1 - t2)), np.mean(2 * r * t1 * x / (1 - t2) ** 2)])


def verify_record(holds, should, variant="corrected", tightness=None):
    """A record of ``sideq verify`` whose verdict is ``holds`` and whose claim should
    hold (True), should fail (False, a printed statement shown wrong) or is
    informational (None)."""
    return verify._rec("Theorem X", variant, "s", "p", "o", None, "t", holds, should, tightness=tightness)


def run_cli(capsys, *argv):
    """``sideq ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = cli_main(list(argv))
    except SystemExit as stop:  # (argparse's own errors exit)
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err
