"""sideq.xla: the XLA:CPU options sideq compiles its loops with.

The options change how XLA vectorizes and in which order it sums, not what is
computed: σ and exp must come out bit for bit the same, NaN and ∞ must still
propagate and be detected, and a descent run compiled with XLA's defaults must
give the same trajectory (the second route).  An override the user sets must be
honoured or refused in one line: every documented spelling of a setting is
read as documented, only the CPU gets the options, a caller's copy of them is
its own, and ``xla.jit`` compiles with the options in force for the default
backend (a spy on ``jax.jit`` is the second route).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import XLA_FAST_MATH, fake_cpuinfo, no_file

import sideq
from sideq import xla
from sideq.train import _descent_empirical, descent


@pytest.mark.parametrize("value,expected", [("256", 256), ("512", 512), (" 512 ", 512)])
def test_width_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(xla.ENV, value)
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "0")
    assert xla.cpu_vector_width() == expected
    assert xla.compiler_options("cpu") == {"xla_cpu_prefer_vector_width": expected}
    assert xla.compiler_options("gpu") is None  # other backends keep XLA's defaults


@pytest.mark.parametrize("flags,expected", [({"sse2", "avx2", "avx512f"}, 512), ({"sse2", "avx2"}, None)])
def test_width_detected_from_the_cpu(monkeypatch, flags, expected):
    monkeypatch.delenv(xla.ENV, raising=False)
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "0")
    monkeypatch.setattr(xla, "_cpu_flags", lambda: frozenset(flags))
    assert xla.cpu_vector_width() == expected
    assert xla.compiler_options("cpu") == (None if expected is None else {"xla_cpu_prefer_vector_width": 512})
    monkeypatch.setenv(xla.ENV, "auto")
    assert xla.cpu_vector_width() == expected


@pytest.mark.parametrize("value,expected", [(None, True), ("1", True), ("on", True), ("0", False), ("off", False)])
def test_reassociation_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(xla.ENV, "256")
    if value is None:
        monkeypatch.delenv(xla.ENV_REASSOCIATE, raising=False)
    else:
        monkeypatch.setenv(xla.ENV_REASSOCIATE, value)
    options = xla.compiler_options("cpu")
    assert options["xla_cpu_prefer_vector_width"] == 256
    assert options.get("xla_cpu_enable_fast_math", False) is expected
    if expected:  # every IEEE guarantee but the order of operations is kept
        for guarantee in ("nans", "infs", "division", "functions"):
            assert options[f"xla_cpu_fast_math_honor_{guarantee}"] is True


def test_bad_settings_are_one_line_errors(monkeypatch):
    monkeypatch.setenv(xla.ENV, "1024")
    with pytest.raises(sideq.SideqInputError, match=r"^SIDEQ_CPU_VECTOR_WIDTH: expected 256, 512 or auto"):
        xla.cpu_vector_width()
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "maybe")
    with pytest.raises(sideq.SideqInputError, match=r"^SIDEQ_CPU_REASSOCIATE: expected 1 or 0"):
        xla.cpu_reassociate()


def _sideq_options(monkeypatch):
    monkeypatch.setenv(xla.ENV, "512")
    monkeypatch.delenv(xla.ENV_REASSOCIATE, raising=False)
    return xla.compiler_options("cpu")


def test_functions_are_bit_for_bit_the_same_and_nan_propagates(monkeypatch):
    options = _sideq_options(monkeypatch)
    z = np.concatenate(
        [
            np.linspace(-745.0, 710.0, 20001),
            np.random.default_rng(0).normal(0, 5, 20000),
            [np.nan, np.inf, -np.inf, 0.0, -0.0],
        ]
    )
    for fn in (jnp.exp, jax.nn.sigmoid, jnp.tanh, jnp.log1p, lambda v: 1.0 / (1.0 + v * v)):
        plain, fast = jax.jit(fn)(z), jax.jit(fn, compiler_options=options)(z)
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(plain))
    # Sums and maxima reorder, but a NaN or an ∞ still reaches the result.
    total = jax.jit(lambda v: (jnp.sum(v), jnp.max(v), jnp.all(jnp.isfinite(v))), compiler_options=options)
    v = np.random.default_rng(1).normal(size=1001)
    for bad in (np.nan, np.inf):
        w = v.copy()
        w[517] = bad
        s, m, finite = total(w)
        assert not np.isfinite(float(s)) and not np.isfinite(float(m)) and not bool(finite)
    s, m, finite = total(v)
    assert abs(float(s) - float(np.sum(v))) <= 1e-12 and float(m) == float(np.max(v)) and bool(finite)


def test_same_run_as_with_xla_defaults(monkeypatch):
    model = sideq.single_index("sigmoid")
    x = np.random.default_rng(0).uniform(0, 1, (64, 1))
    runs = {}
    for width, reassociate in (("256", "0"), ("512", "1")):
        monkeypatch.setenv(xla.ENV, width)
        monkeypatch.setenv(xla.ENV_REASSOCIATE, reassociate)
        before = _descent_empirical._cache_size()
        runs[width] = descent(model, [0.3, -0.2], xi=[2.0], x=x, eta=0.5, epochs=30)
        assert _descent_empirical._cache_size() == before + 1  # one compilation per setting
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


@pytest.mark.parametrize("value", ["", "auto", "AUTO", " Auto "])
@pytest.mark.parametrize("flags,expected", [({"sse2", "avx512f"}, 512), ({"sse2", "avx2"}, None)])
def test_width_auto_spellings_detect(monkeypatch, value, flags, expected):
    monkeypatch.setenv(xla.ENV, value)
    monkeypatch.setattr(xla, "_cpu_flags", lambda: frozenset(flags))
    assert xla.cpu_vector_width() == expected


@pytest.mark.parametrize(
    "value,expected",
    [
        ("", True),
        ("TRUE", True),
        ("yes", True),
        (" On ", True),
        ("false", False),
        ("No", False),
        ("OFF", False),
        (" 0 ", False),
    ],
)
def test_reassociate_every_documented_spelling(monkeypatch, value, expected):
    monkeypatch.setenv(xla.ENV_REASSOCIATE, value)
    assert xla.cpu_reassociate() is expected


@pytest.mark.parametrize("platform", ["gpu", "tpu", "cuda", "rocm", "METAL"])
def test_only_the_cpu_gets_options(monkeypatch, platform):
    monkeypatch.setenv(xla.ENV, "512")
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "1")
    assert xla.compiler_options(platform) is None
    assert xla.compiler_options("cpu") == {**XLA_FAST_MATH, "xla_cpu_prefer_vector_width": 512}


def test_options_do_not_leak_between_calls(monkeypatch):
    """A width chosen once must not stick to later calls (nor to the module's table)."""
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "1")
    monkeypatch.setenv(xla.ENV, "512")
    first = xla.compiler_options("cpu")
    first["mutated_by_the_caller"] = True  # a caller's dict is its own
    monkeypatch.setenv(xla.ENV, "auto")
    monkeypatch.setattr(xla, "_cpu_flags", lambda: frozenset({"sse2", "avx2"}))
    assert xla.compiler_options("cpu") == XLA_FAST_MATH
    monkeypatch.setenv(xla.ENV, "256")
    assert xla.compiler_options("cpu") == {**XLA_FAST_MATH, "xla_cpu_prefer_vector_width": 256}


def test_cpu_flags_read_from_cpuinfo(monkeypatch):
    text = (
        "processor\t: 0\nvendor_id\t: GenuineX\nmodel name\t: Some: CPU\n"
        "flags\t\t: fpu sse2 avx2 avx512f avx512bw\nbugs\t\t: spectre_v1\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    monkeypatch.setattr(xla, "open", fake_cpuinfo(text), raising=False)
    assert xla._cpu_flags.__wrapped__() == frozenset({"fpu", "sse2", "avx2", "avx512f", "avx512bw"})
    monkeypatch.setattr(xla, "open", no_file, raising=False)
    assert xla._cpu_flags.__wrapped__() == frozenset()  # no /proc: nothing claimed


def test_jit_compiles_with_the_options_of_the_default_backend(monkeypatch):
    """The options reach jax.jit (a spy on jax.jit is the second route), and a
    non-CPU backend gets XLA's defaults."""
    seen = []
    real_jit = jax.jit

    def spy(fun, **kwargs):
        seen.append(kwargs.get("compiler_options"))
        return real_jit(fun, **kwargs)

    monkeypatch.setenv(xla.ENV, "512")
    monkeypatch.setenv(xla.ENV_REASSOCIATE, "1")
    monkeypatch.setattr(jax, "jit", spy)
    f = xla.jit(lambda v: v + 1.0)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert float(f(jnp.asarray(1.0))) == 2.0
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert float(f(jnp.asarray(1.0))) == 2.0
    assert seen == [{**XLA_FAST_MATH, "xla_cpu_prefer_vector_width": 512}, None]
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert "stablehlo" in f.lower(jnp.asarray(1.0)).as_text()
    assert len(seen) == 2  # .lower() goes through the jit of the options in force, not a bare one
    # Inside another jit (which refuses options on a nested jit): the plain
    # jit, the outer one's options applying; under vmap alone, the options.
    g = xla.jit(lambda v: v + 1.0)
    assert float(real_jit(lambda v: 2.0 * g(v))(jnp.asarray(1.0))) == 4.0
    assert seen[2:] == [{**XLA_FAST_MATH, "xla_cpu_prefer_vector_width": 512}, None]
    h = xla.jit(lambda v: v + 1.0)
    np.testing.assert_array_equal(jax.vmap(h)(jnp.arange(3.0)), [1.0, 2.0, 3.0])
    assert seen[4:] == [{**XLA_FAST_MATH, "xla_cpu_prefer_vector_width": 512}]
