"""Value classes without `dataclasses`: the fields are named, in order, by `__match_args__`,
which is also the class's `__slots__`.

A dataclass compiles its generated methods when its module is imported (about 0.7 ms each on
Python 3.11), which dominated `tka status` start-up (issue 14 item 4). These bases give the
same behaviour from the field names alone: equality and hashing over the fields in order, the
dataclass `repr`, frozen-ness (assignment raises AttributeError, as FrozenInstanceError is
one), `replace` (as `dataclasses.replace`), and copy/pickle through the positional
`__init__` every subclass writes out.
"""

from __future__ import annotations

from typing import Any, Self


class _Values:
    """What both bases share."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, _Values)
        return self._values() == other._values()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self) -> tuple[type[Self], tuple[Any, ...]]:
        return self.__class__, self._values()

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied; an unknown name is a TypeError."""
        make: Any = self.__class__
        kept = {name: getattr(self, name) for name in self.__match_args__ if name not in changes}
        return make(**kept, **changes)  # type: ignore[no-any-return]


class Fields(_Values):
    """Mutable fields: compared by value, unhashable (a dataclass with eq and not frozen)."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]


class Frozen(_Values):
    """Immutable fields: hashable over all of them (a frozen dataclass). `__init__` sets each
    one with `object.__setattr__`."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")
