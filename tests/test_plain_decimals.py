"""The plain-decimal reader gives numpy's reader's values bit for bit, or declines.

It is the fast path of every recording read (:mod:`roller.recordings.recording`): a value one
ulp off would shift a time threshold, and a field it misread would slip past the checks.
Its answers are compared with ``numpy.loadtxt`` on generated files (values of every size and
number of decimals, -0.0, Unix times) and on arbitrary text made of the characters a recording
holds; anything it accepts, numpy must read to the same bits.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roller.recordings import plain_decimals, recording
from roller.recordings.recording import RecordingWriter


def _numpy_reads(raw: bytes, n_columns: int) -> np.ndarray | None:
    """What the recording reader's numpy path gives for ``raw`` (None if it refuses)."""
    out = recording._parse_with_numpy(raw, n_columns)
    return out if out is not None and out.shape[1:] == (n_columns,) else None


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool((a.view(np.int64) == b.view(np.int64)).all())


_value = st.one_of(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    st.floats(min_value=-1.0, max_value=1.0, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e-7, -1e-7, 9.999999, 1799.999999, 1733600000.123456]))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(_value, min_size=3, max_size=3), min_size=1, max_size=40),
       decimals=st.lists(st.integers(0, 9), min_size=3, max_size=3),
       final_newline=st.booleans())
def test_formatted_numbers_read_to_the_same_bits_as_numpy(rows, decimals, final_newline):
    text = "\n".join(",".join(f"{v:.{d}f}" for v, d in zip(row, decimals, strict=True))
                     for row in rows)
    raw = (text + ("\n" if final_newline else "")).encode()
    ours = plain_decimals.parse(raw, 3)
    expected = _numpy_reads(raw, 3)
    assert expected is not None
    if ours is None:
        # declined only where a field has no point (0 decimals) or where the digits, with
        # the fractions padded to the block's most decimals, reach 2**53
        largest = max(abs(float(f)) for f in text.replace("\n", ",").split(","))
        assert 0 in decimals or largest * 10.0 ** max(decimals) >= 0.99 * 2 ** 53
    else:
        assert _same_bits(ours, expected)


@settings(max_examples=1500, deadline=None)
@given(text=st.text(alphabet="0123456789.-,\n+eE \r", min_size=1, max_size=60),
       n_columns=st.integers(1, 3))
def test_whatever_it_accepts_numpy_reads_the_same(text, n_columns):
    raw = text.encode()
    ours = plain_decimals.parse(raw, n_columns)
    if ours is not None:
        expected = _numpy_reads(raw, n_columns)
        assert expected is not None, f"accepted {raw!r}, which numpy refuses"
        assert _same_bits(ours, expected)


@pytest.mark.parametrize("raw", [
    b"1.5,2e3\n",          # an exponent
    b"+1.5,2.0\n",         # a plus sign
    b" 1.5,2.0\n",         # a space
    b"1.5,2.0\r\n",        # Windows line ends
    b"1.5,2\n",            # a field without a point
    b"1.5,2.0\n\n3.0,4.0\n",  # a blank line
    b"1.5,2.0,3.0\n",      # a row too long
    b"1.5\n",              # a row too short
    b"1.5,-.5\n",          # no digit before the point
    b"1.5,2..0\n",         # two points
    b"1.5,2.0-\n",         # a sign at the end
    b"nan,2.0\n",          # not a number
    b"1.5,12345678901234567.0\n",  # beyond 2**53
    b"",
])
def test_other_forms_are_left_to_numpy_or_the_line_checks(raw):
    assert plain_decimals.parse(raw, 2) is None


def test_a_recording_as_roller_record_writes_it_is_read_here(tmp_path):
    """The fast path really is taken for our own files (else the speed-up is lost quietly)."""
    rng = np.random.default_rng(3)
    t = 1733600000.0 + np.cumsum(rng.uniform(0.0009, 0.0011, 500))
    samples = np.column_stack([rng.normal(0, 9.81, (500, 3)), rng.normal(0, 3, (500, 3))])
    buffer = io.StringIO()
    with RecordingWriter(buffer) as writer:
        writer.write(t, samples)
    raw = buffer.getvalue().split("\n", 1)[1].encode()
    ours = plain_decimals.parse(raw, 7)
    assert ours is not None
    assert _same_bits(ours, _numpy_reads(raw, 7))
    np.testing.assert_allclose(ours[:, 0], t, rtol=0, atol=5e-7)
