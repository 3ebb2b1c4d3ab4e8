"""sideq.status: the run statuses a user reads, their codes, their order and their bits.

Each status has a row in the user documentation's status table (README.md or
a page under docs/) that says what its message says; the codes are the stable ones VERIFY.md prints raw; ``worst`` and
``severity`` follow the order the ``Status`` docstring lists ("the worst
wins"), parsed from the docstring itself; ``first_status`` takes the first case
that holds, elementwise; status bits are decoded by hand.
"""

import pathlib
import re

import jax.numpy as jnp
import numpy as np

from sideq import status as S
from sideq.status import Status

ROOT = pathlib.Path(__file__).parent.parent


def _documented_status_table():
    """{name: meaning} from the rows of the ``| status | meaning |`` tables of
    README.md and the pages under docs/."""
    rows = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for table in re.findall(r"^\| status \| meaning \|\n((?:\|.*\n?)+)", page.read_text(), flags=re.M):
            rows.update(re.findall(r"^\| `([A-Z_]+)` \| (.*) \|$", table, flags=re.M))
    return rows


def _docstring_order():
    """The order 'the worst wins' in, as the Status docstring lists it (worst first)."""
    m = re.search(r"the worst wins:(.*?)\(", " ".join(Status.__doc__.split()))
    return [Status[name.strip()] for name in m.group(1).split(",")]


def test_every_status_has_a_documented_row_and_the_message_says_what_the_row_says():
    table = _documented_status_table()
    assert set(table) == {s.name for s in Status}
    # hand-picked phrase of each documented row, and how the ASCII message words it
    phrases = {
        "MAX_STEPS": ("iteration limit", "iteration limit"),
        "DIVERGED": ("non-finite or exploding", "non-finite or exploding"),
        "SINGULAR": ("θ2 = 1", "theta2 = 1"),
        "NON_UNIQUE": ("can reach 1", "can reach 1"),
        "SOLVER_FAILURE": ("no root found", "no root found"),
        "CONVERGED": ("unique by the activation's exact slope bounds", "converged"),
        "UNVERIFIED": ("estimated on a grid", "estimated on a grid"),
    }
    for s in Status:
        documented_phrase, message_phrase = phrases[s.name]
        assert documented_phrase in table[s.name], s
        assert message_phrase in s.message, s
        # describe() gives the message from any integer form of the code
        assert S.describe(int(s)) == s.message
        assert S.describe(np.int32(int(s))) == s.message
        assert S.describe(jnp.asarray(int(s), jnp.int32)) == s.message
        # a message names its own status, not another's
        for other, (_, other_phrase) in phrases.items():
            if other != s.name and other != "CONVERGED":
                assert other_phrase not in s.message, (s, other)


def test_codes_are_the_stable_ones_verify_md_records():
    """The codes are stable (sweeps store them on disk; VERIFY.md prints them raw):
    read them back from VERIFY.md's rows whose meaning is known without the enum."""
    text = (ROOT / "VERIFY.md").read_text()
    recorded, header = [], None
    for line in text.splitlines():
        if line and not line[0].isspace():
            header = line
        m = re.search(r"statuses \[([0-9, ]*)\]$", line)
        if m and header:
            recorded.append((header, [int(c) for c in m.group(1).split(",")]))
    assert recorded and all(c in {int(s) for s in Status} for _, codes in recorded for c in codes)

    def codes_of(*words):
        rows = [codes for h, codes in recorded if all(w in h for w in words)]
        assert rows, words
        return rows

    # Lemma 3.2: every linear flow converged ("flow defined", all runs converged)
    assert all(codes == [int(Status.CONVERGED)] for codes in codes_of("Lemma 3.2"))
    # outside Corollary 3.1's assumptions, flows capped at max_steps: softplus meets
    # theta2 >= 1 with no root (README), tanh meets theta2 * sigma' >= 1
    assert codes_of("Corollary 3.1", "outside", "softplus") == [
        sorted([int(Status.MAX_STEPS), int(Status.SOLVER_FAILURE)])
    ]
    assert codes_of("Corollary 3.1", "outside", "tanh") == [sorted([int(Status.MAX_STEPS), int(Status.NON_UNIQUE)])]


def test_worst_and_severity_follow_the_documented_order():
    order = _docstring_order()  # worst first
    assert sorted(order) == sorted(Status)
    ranks = [int(S.severity(jnp.int32(int(s)))) for s in order]
    assert all(a > b for a, b in zip(ranks, ranks[1:])), (order, ranks)
    for i, a in enumerate(order):
        for b in order[i:]:
            # the one listed first wins, whichever way round it is given
            assert int(S.worst(jnp.asarray([int(a), int(b)]))) == int(a), (a, b)
            assert int(S.worst(np.asarray([int(b), int(a), int(b)]))) == int(a), (a, b)
    # a 2-D numpy array, the worst anywhere in it
    grid = np.full((3, 4), int(Status.CONVERGED))
    grid[2, 1] = int(Status.NON_UNIQUE)
    assert int(S.worst(grid)) == int(Status.NON_UNIQUE)
    grid[0, 3] = int(Status.MAX_STEPS)
    assert int(S.worst(grid)) == int(Status.MAX_STEPS)


def test_first_status_takes_the_first_case_that_holds_elementwise():
    a = jnp.asarray([True, False, True, False])
    b = jnp.asarray([True, True, False, False])
    got = S.first_status([(a, Status.SINGULAR), (b, Status.DIVERGED)])
    # by hand: [a wins, b, a, neither -> default CONVERGED]
    np.testing.assert_array_equal(
        np.asarray(got), [int(Status.SINGULAR), int(Status.DIVERGED), int(Status.SINGULAR), int(Status.CONVERGED)]
    )
    got = S.first_status([(b, Status.NON_UNIQUE), (a, Status.SOLVER_FAILURE)], default=Status.MAX_STEPS)
    np.testing.assert_array_equal(
        np.asarray(got),
        [int(Status.NON_UNIQUE), int(Status.NON_UNIQUE), int(Status.SOLVER_FAILURE), int(Status.MAX_STEPS)],
    )
    assert np.asarray(got).dtype == np.int32
    assert int(S.first_status([], default=Status.DIVERGED)) == int(Status.DIVERGED)


def test_status_bits_flags_and_has_status_decoded_by_hand():
    codes = [int(s) for s in Status]
    np.testing.assert_array_equal(np.asarray(S.status_bit(jnp.asarray(codes))), [2**c for c in codes])
    sample = [
        int(Status.CONVERGED),
        int(Status.CONVERGED),
        int(Status.DIVERGED),
        int(Status.SOLVER_FAILURE),
        int(Status.DIVERGED),
        int(Status.CONVERGED),
    ]
    flags = int(S.status_flags(jnp.asarray(sample).reshape(2, 3)))
    want = 0
    for c in set(sample):  # each code that occurs sets its bit once
        want += 2**c
    assert flags == want
    decoded = {s for s in Status if (flags // 2 ** int(s)) % 2 == 1}  # read the bits back by hand
    assert decoded == {Status(c) for c in sample}
    for s in Status:
        assert bool(S.has_status(flags, s)) == (s in decoded), s
    # any of several codes
    absent = [s for s in Status if s not in decoded]
    assert not bool(S.has_status(flags, *absent))
    assert bool(S.has_status(flags, absent[0], Status.DIVERGED))
    assert bool(S.has_status(flags, Status.DIVERGED, absent[0]))
    # also on an array of masks, as the descent step uses it
    masks = jnp.asarray([2 ** int(Status.SINGULAR), 2 ** int(Status.CONVERGED), 0])
    np.testing.assert_array_equal(
        np.asarray(S.has_status(masks, Status.SINGULAR, Status.MAX_STEPS)), [True, False, False]
    )
    assert int(S.status_flags(jnp.asarray([int(Status.NON_UNIQUE)]))) == 2 ** int(Status.NON_UNIQUE)
