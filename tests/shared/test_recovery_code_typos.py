"""Typos in a recovery code, on a fixed code so that every case is checked on every run: one
wrong character and one swap of neighbours are corrected to exactly the code; two wrong
characters are refused, never "corrected"."""

from __future__ import annotations

import pytest

from shared.recovery_code import InvalidRecoveryCode, candidates, is_valid

# A valid code: "A" (version), "C" (identifier), 34 fixed characters and the 4 check characters
# that SHA-256 gives them. Characters 20 and 21 differ, so swapping them is a real typo.
CODE = "ACKLMNPQRSTUVWXYZ0123456789ACDEFHJKLPFTU"


def test_the_fixed_code_is_valid():
    assert is_valid(CODE) and CODE[20] != CODE[21]


@pytest.mark.parametrize(
    "typo",
    [
        CODE[:10] + "Z" + CODE[11:],  # one wrong character in the random part
        CODE[:39] + "A",  # one wrong check character
        CODE[:20] + CODE[21] + CODE[20] + CODE[22:],  # two neighbours swapped
        (CODE[:10] + "Z" + CODE[11:]).lower(),  # and in lower case
    ],
)
def test_a_single_typo_is_corrected_to_exactly_the_code(typo):
    assert typo.upper() != CODE and not is_valid(typo.upper())
    assert candidates(typo) == [CODE]


@pytest.mark.parametrize(
    "typos",
    [
        CODE[:5] + "A" + CODE[6:25] + "A" + CODE[26:],  # two wrong characters, far apart
        CODE[:38] + "AA",  # two wrong check characters
    ],
)
def test_two_typos_are_refused_not_corrected(typos):
    with pytest.raises(InvalidRecoveryCode, match="more than one place"):
        candidates(typos)
