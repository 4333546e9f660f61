"""Key arguments `tlpub:<hex>[?votes]`: votes are parsed as the reference parses them (Go's
strconv.Atoi, then a conversion to uint), nothing more lenient."""

from __future__ import annotations

import pytest

from signer.cli import UsageError
from signer.cli.lock_handlers import parse_key_arg

KEY = "tlpub:" + "ab" * 32


@pytest.mark.parametrize(
    ("votes", "expected"),
    [("", 1), ("3", 3), ("+7", 7), ("0009", 9), ("-1", 2**64 - 1), ("4096", 4096)],
)
def test_votes_the_reference_accepts(votes: str, expected: int) -> None:
    arg = f"{KEY}?{votes}" if votes else KEY
    assert parse_key_arg(arg, 1).votes == expected


@pytest.mark.parametrize("votes", ["٣", "\uff13", " 3", "3 ", "1_0", "0x10", "3.0", "+", "-"])
def test_votes_that_are_not_ascii_digits_are_refused(votes: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_key_arg(f"{KEY}?{votes}", 2)
    assert str(err.value) == f'parsing key 2 votes: strconv.Atoi: parsing "{votes}": invalid syntax'


def test_votes_beyond_int64_are_out_of_range() -> None:
    with pytest.raises(UsageError, match="value out of range"):
        parse_key_arg(f"{KEY}?9223372036854775808", 1)
    assert parse_key_arg(f"{KEY}?9223372036854775807", 1).votes == 2**63 - 1
