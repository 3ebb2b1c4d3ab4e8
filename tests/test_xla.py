"""sideq.xla: the CPU vector width sideq compiles its loops with.

The width changes how XLA vectorizes, not what is computed: a descent run
compiled at 256 and at 512 bits must give the same trajectory (the second
route), and an override the user sets must be honoured or refused in one line.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import sideq
from sideq import xla
from sideq.train import _descent_empirical, descent


@pytest.mark.parametrize("value,expected", [("256", 256), ("512", 512), (" 512 ", 512)])
def test_width_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(xla.ENV, value)
    assert xla.cpu_vector_width() == expected
    assert xla.compiler_options("cpu") == {"xla_cpu_prefer_vector_width": expected}
    assert xla.compiler_options("gpu") is None  # other backends keep XLA's defaults


@pytest.mark.parametrize("flags,expected", [({"sse2", "avx2", "avx512f"}, 512), ({"sse2", "avx2"}, None)])
def test_width_detected_from_the_cpu(monkeypatch, flags, expected):
    monkeypatch.delenv(xla.ENV, raising=False)
    monkeypatch.setattr(xla, "_cpu_flags", lambda: frozenset(flags))
    assert xla.cpu_vector_width() == expected
    assert xla.compiler_options("cpu") == (None if expected is None else {"xla_cpu_prefer_vector_width": 512})
    monkeypatch.setenv(xla.ENV, "auto")
    assert xla.cpu_vector_width() == expected


def test_bad_width_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(xla.ENV, "1024")
    with pytest.raises(sideq.SideqInputError, match=r"^SIDEQ_CPU_VECTOR_WIDTH: expected 256, 512 or auto"):
        xla.cpu_vector_width()


def test_both_widths_give_the_same_run(monkeypatch):
    model = sideq.single_index("sigmoid")
    x = np.random.default_rng(0).uniform(0, 1, (64, 1))
    runs = {}
    for width in ("256", "512"):
        monkeypatch.setenv(xla.ENV, width)
        before = _descent_empirical._cache_size()
        runs[width] = descent(model, [0.3, -0.2], xi=[2.0], x=x, eta=0.5, epochs=30)
        assert _descent_empirical._cache_size() == before + 1  # one compilation per width
    a, b = runs["256"], runs["512"]
    assert np.max(np.abs(np.asarray(a.theta) - np.asarray(b.theta))) <= 1e-13
    assert np.max(np.abs(np.asarray(a.loss) - np.asarray(b.loss))) <= 1e-15
    assert int(a.status) == int(b.status)


def test_jit_wrapper_passes_static_arguments_through():
    @xla.jit(static_argnames=("k",))
    def power(v, *, k):
        return v**k

    assert float(power(jnp.asarray(3.0), k=2)) == 9.0
    assert float(power(jnp.asarray(3.0), k=3)) == 27.0
    assert power.__name__ == "power"
    assert "stablehlo" in power.lower(jnp.asarray(3.0), k=2).as_text()
