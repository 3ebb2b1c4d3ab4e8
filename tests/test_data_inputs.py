"""What the data layer accepts and refuses: the laws of X (their dimension, their
number of quadrature nodes, their covariance), the seeded draws of θ(0), the
quadrature rule of a box, and the files given to ``load_data``.

Expected values by closed forms (moments of the uniform law), Monte Carlo with
its error bar (the seeded normal draws), or inputs built to be refused; a
refused input is a one-line SideqInputError that starts with the argument's
name.
"""

import math

import numpy as np
import pytest
from helpers import raises_input_error

import sideq


def test_uniform_infers_d_from_either_bound():
    u = sideq.uniform(0.0, [1.0, 2.0])
    assert u.d == 2 and np.array_equal(u.low, [0.0, 0.0]) and np.array_equal(u.high, [1.0, 2.0])
    u = sideq.uniform([-1.0, 0.0, 0.5], 3.0)
    assert u.d == 3 and np.array_equal(u.high, [3.0, 3.0, 3.0])


@pytest.mark.parametrize("bad", [True, False, 2.5, "8"])
def test_nodes_must_be_an_integer(bad):
    raises_input_error("nodes:", lambda: sideq.uniform(0.0, 1.0, 1, nodes=bad))
    raises_input_error("nodes:", lambda: sideq.gaussian(0.0, 1.0, nodes=bad))


def test_gaussian_rejects_an_indefinite_cov_beyond_rounding():
    # eigenvalues (1, -1e-3): indefinite by far more than rounding (eps ~ 1e-16)
    c, s = math.cos(0.3), math.sin(0.3)
    Q = np.array([[c, -s], [s, c]])
    C = Q @ np.diag([1.0, -1e-3]) @ Q.T
    C = (C + C.T) / 2
    raises_input_error("cov:", lambda: sideq.gaussian([0.0, 0.0], C))
    # and a PSD one built the same way (eigenvalues 1, 0) is accepted
    P = Q @ np.diag([1.0, 0.0]) @ Q.T
    sideq.gaussian([0.0, 0.0], (P + P.T) / 2)


def test_seeded_normal_is_mean_plus_std_times_a_standard_normal():
    from sideq.data import seeded_normal

    p = 50
    z = np.stack([seeded_normal(s, 0.0, 1.0, p) for s in range(40)])  # 2000 draws
    # affine in (mean, std): theta(0) = MEAN + STD z with the same z
    for s in (0, 7):
        np.testing.assert_allclose(seeded_normal(s, 0.5, 0.3, p), 0.5 + 0.3 * z[s], rtol=0, atol=1e-15)
        mean = np.arange(p) / p
        np.testing.assert_allclose(seeded_normal(s, mean, 0.1, p), mean + 0.1 * z[s], rtol=0, atol=1e-15)
    # z is standard normal (Monte Carlo, 5 standard errors)
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var(ddof=1) - 1.0) < 5 * math.sqrt(2 / (n - 1))
    # and the std is the std: the spread of 0.3 z is 0.3
    w = np.stack([seeded_normal(s, 0.0, 0.3, p) for s in range(40)])
    assert abs(w.std(ddof=1) / 0.3 - 1.0) < 5 / math.sqrt(2 * (n - 1))


@pytest.mark.parametrize("seed", [0, 1, 41, 2**31 - 1, 2**31, 2**40 + 3])
def test_seeded_draws_are_the_bits_of_the_eager_prng_calls(seed):
    # seed_keys and seeded_normal run as one compiled program each; their keys
    # and θ(0) must stay those of jax.random.split(PRNGKey(seed)) and
    # jax.random.normal(key_init, (p,)) called one by one, bit for bit (seeds
    # past 2**31 included, which PRNGKey takes through int64).
    import jax
    import jax.numpy as jnp

    from sideq.data import seed_keys, seeded_normal

    key_data, key_init = jax.random.split(jax.random.PRNGKey(seed))
    got_data, got_init = seed_keys(seed)
    assert np.array_equal(got_data, key_data) and np.array_equal(got_init, key_init)
    assert got_data.dtype == key_data.dtype and got_init.shape == key_init.shape
    for p in (1, 3, 64):
        z = np.asarray(jax.random.normal(key_init, (p,), jnp.result_type(float)))
        want = np.asarray(0.25) + 1.5 * z
        got = seeded_normal(seed, 0.25, 1.5, p)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("x64", [True, False])
def test_uniform_draws_are_the_bits_of_the_eager_prng_call(x64):
    # The uniform law's sample runs as one compiled program (which the sideq
    # command keeps between calls); its draws must stay those of
    # jax.random.uniform called eagerly, bit for bit, in either precision.
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(x64):
        dtype = jnp.result_type(float)
        for low, high in (([0.0], [1.0]), ([-1.0, 0.5, 2.0], [1.0, 0.75, 9.0])):
            law = sideq.uniform(low, high)
            for n in (1, 7, 1000):
                key = jax.random.PRNGKey(n)
                lo, hi = jnp.asarray(law.low, dtype), jnp.asarray(law.high, dtype)
                want = np.asarray(jax.random.uniform(key, (n, len(low)), dtype, minval=lo, maxval=hi))
                got = np.asarray(sideq.sample(law, key, n))
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_seed_must_be_an_integer_at_least_zero(bad):
    from sideq.data import seed_keys, seeded_normal

    raises_input_error("seed:", lambda: seed_keys(bad))
    raises_input_error("seed:", lambda: seeded_normal(bad, 0.0, 1.0, 2))


def test_quadrature_rule_maps_onto_the_box():
    from sideq.risk import quadrature_rule

    a, b = -1.0, 2.0
    x, w = quadrature_rule(sideq.uniform(a, b, 1))
    assert np.all((x > a) & (x < b)) and math.isclose(w.sum(), 1.0, rel_tol=1e-14)
    for k in range(1, 6):  # E[X^k] = (b^{k+1} − a^{k+1}) / ((k+1)(b − a)), exact for Gauss–Legendre
        want = (b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a))
        assert np.sum(w * x[:, 0] ** k) == pytest.approx(want, rel=1e-13, abs=1e-14)
    lo, hi = np.array([-0.5, 1.0]), np.array([1.0, 4.0])
    x, w = quadrature_rule(sideq.uniform(lo, hi))
    m = (lo + hi) / 2
    assert np.all((x > lo) & (x < hi))
    np.testing.assert_allclose(w @ x, m, rtol=1e-13)
    assert np.sum(w * x[:, 0] * x[:, 1]) == pytest.approx(m[0] * m[1], rel=1e-13)


def test_load_data_rejects_complex_numbers(tmp_path):
    """Complex data are refused, not cast to their real part."""
    p = tmp_path / "c.npy"
    np.save(p, np.array([0.1 + 5j, 0.7 - 2j]))
    raises_input_error("data:", lambda: sideq.load_data(p))


def test_load_data_names_a_ragged_csv(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("x,y\n0.1,0.2\n0.3,0.4,0.5\n")
    raises_input_error("data:", lambda: sideq.load_data(p))
    with pytest.raises(sideq.SideqInputError, match="rows of different lengths .*data row 2 has 3 columns, expected 2"):
        sideq.load_data(p)
