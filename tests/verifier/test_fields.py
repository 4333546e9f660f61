"""The value-class bases that stand in for dataclasses on the start-up paths."""

from __future__ import annotations

import copy
import pickle

import pytest

from verifier.aum import AUM
from verifier.fields import Fields, Frozen
from verifier.key import Key, Signature


class Point(Frozen):
    __match_args__ = ("x", "y")
    __slots__ = __match_args__
    x: int
    y: int

    def __init__(self, x: int, y: int = 0) -> None:
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)


class Counter(Fields):
    __match_args__ = ("name", "count")
    __slots__ = __match_args__

    def __init__(self, name: str, count: int = 0) -> None:
        self.name = name
        self.count = count


def test_frozen_equality_hash_and_repr_follow_the_fields_in_order() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(2, 1)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert len({Point(1, 2), Point(1, 2), Point(3)}) == 2
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"


def test_another_class_with_the_same_fields_is_not_equal() -> None:
    class Other(Point):
        __slots__ = ()

    assert Point(1, 2) != Other(1, 2)
    assert Point(1, 2).__eq__(Other(1, 2)) is NotImplemented


def test_frozen_refuses_assignment_and_deletion() -> None:
    p = Point(1, 2)
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y
    with pytest.raises(AttributeError):
        p.z = 1  # type: ignore[attr-defined]
    assert p == Point(1, 2)


def test_replace_runs_init_again_and_refuses_unknown_names() -> None:
    p = Point(1, 2)
    assert p.replace(y=7) == Point(1, 7)
    assert p == Point(1, 2)
    with pytest.raises(TypeError):
        p.replace(z=1)
    # AUM's __init__ copies its meta: a replaced AUM does not share the caller's dict.
    meta = {"a": "b"}
    aum = AUM(kind=3, meta=meta).replace(votes=2)
    meta["a"] = "changed"
    assert aum.meta == {"a": "b"} and aum.votes == 2


def test_copy_and_pickle_give_equal_values() -> None:
    key = Key(votes=2, public=b"\x01" * 32, meta={"owner": "ops"})
    aum = AUM(kind=1, prev_aum_hash=b"\x02" * 32, key=key,
              signatures=(Signature(key_id=b"\x01" * 32, signature=b"\x03" * 64),))
    for value in (key, aum, Point(4, 5)):
        assert copy.copy(value) == value
        assert copy.deepcopy(value) == value
        assert pickle.loads(pickle.dumps(value)) == value


def test_fields_are_mutable_and_unhashable() -> None:
    c = Counter("a")
    c.count += 1
    assert c == Counter("a", 1)
    with pytest.raises(TypeError):
        hash(c)


def test_key_and_aum_hash_leaves_meta_out_but_equality_keeps_it() -> None:
    a = Key(public=b"\x01" * 32, meta={"x": "1"})
    b = Key(public=b"\x01" * 32, meta={"x": "2"})
    assert hash(a) == hash(b)
    assert a != b
    assert hash(AUM(kind=2, meta={"x": "1"})) == hash(AUM(kind=2))
