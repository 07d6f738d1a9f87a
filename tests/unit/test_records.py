"""tuplenet.records builds the same classes as the stdlib's dataclasses for the subset TupleNet uses: each
check runs on a stdlib class and its records twin and compares what they do."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import ClassVar

import pytest

from tuplenet import records


def twins(frozen: bool, slots: bool) -> tuple[type, type]:
    def make(deco: object, fld: object) -> type:
        class Point:
            """A point."""

            kind: ClassVar[str] = "pt"
            x: int
            y: int = 2
            tags: list = fld(default_factory=list, compare=False)  # type: ignore[operator]
            note: str = fld(default="n", compare=False, repr=False)  # type: ignore[operator]

            @property
            def total(self) -> int:
                return self.x + self.y

        return deco(frozen=frozen, slots=slots)(Point)  # type: ignore[operator]

    return make(dataclasses.dataclass, dataclasses.field), make(records.dataclass, records.field)


@pytest.mark.parametrize(("frozen", "slots"), [(False, False), (True, False), (False, True), (True, True)])
def test_records_behave_as_stdlib_dataclasses(frozen: bool, slots: bool) -> None:
    std, rec = twins(frozen, slots)
    for cls in (std, rec):
        a, b, c = cls(1), cls(1, 2, [], "other"), cls(x=1, y=3)
        assert (a.x, a.y, a.tags, a.note, a.total, cls.kind) == (1, 2, [], "n", 3, "pt")
        assert a == b and a != c and a != (1, 2)
        assert a.tags is not cls(1).tags  # a factory per instance
        assert cls.__match_args__ == ("x", "y", "tags", "note")
        assert hasattr(a, "__dict__") != slots
        if frozen:
            assert hash(a) == hash(b) != hash(c)
            with pytest.raises(AttributeError, match="cannot assign to field 'x'"):
                a.x = 5  # type: ignore[misc]
            with pytest.raises(AttributeError):
                del a.y  # type: ignore[misc]
        else:
            assert cls.__hash__ is None
            a.x = 5
            assert a.x == 5
            a.x = 1
        for twin in (copy.copy(a), copy.deepcopy(a), dataclasses.replace(a, y=9)):
            assert type(twin) is cls and twin.x == 1
        assert dataclasses.replace(a, y=9).y == 9 and dataclasses.is_dataclass(a)
        assert [f.name for f in dataclasses.fields(cls)] == ["x", "y", "tags", "note"]
        assert dataclasses.asdict(a) == {"x": 1, "y": 2, "tags": [], "note": "n"}
        with pytest.raises(TypeError):
            cls()  # x is required
    assert repr(std(1, 2, [3])).split("(", 1)[1] == repr(rec(1, 2, [3])).split("(", 1)[1] == "x=1, y=2, tags=[3])"
    assert records.replace(rec(1), y=7) == rec(1, 7)


def test_pickle_round_trip_of_a_module_level_record() -> None:
    pt = _Pickled(1, "a")
    assert pickle.loads(pickle.dumps(pt)) == pt


@records.dataclass(frozen=True, slots=True)
class _Pickled:
    """Module level so pickle can find it."""

    a: int
    b: str = "b"


def test_post_init_and_own_methods_are_kept() -> None:
    @records.dataclass(frozen=True)
    class Checked:
        """Validated on creation, with its own repr."""

        user: str | None = None
        password: str | None = None

        def __post_init__(self) -> None:
            if self.user and self.password is None:
                raise ValueError("no password")

        def __repr__(self) -> str:
            return f"Checked(user={self.user!r})"

    with pytest.raises(ValueError, match="no password"):
        Checked("u")
    assert repr(Checked("u", "secret")) == "Checked(user='u')"
    assert Checked("u", "p") == Checked("u", "p") and hash(Checked("u", "p")) == hash(Checked("u", "p"))


def test_what_records_do_not_support_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="order"):
        records.dataclass(order=True)
    with pytest.raises(ValueError, match="mutable default"):
        @records.dataclass
        class Bad:
            """A shared list."""

            items: list = []  # noqa: RUF012
    with pytest.raises(TypeError, match="non-default argument"):
        @records.dataclass
        class Order:
            """Default before a required field."""

            a: int = 1
            b: int  # type: ignore[misc]
    with pytest.raises(TypeError, match="inherited"):
        @records.dataclass
        class Child(_Pickled):
            """Fields of a record base."""

            c: int = 0


def test_named_tuples_behave_as_typing_named_tuples() -> None:
    import typing

    def make(base: type) -> type:
        class Load(base):  # type: ignore[misc, valid-type]
            """Loads a value into a field."""

            value: int
            dst: str
            ofs: int = 0

            def text(self) -> str:
                return f"load:{self.value:#x}->{self.dst}[{self.ofs}]"

        return Load

    std, rec = make(typing.NamedTuple), make(records.NamedTuple)
    for cls in (std, rec):
        a = cls(5, "reg0")
        assert a == (5, "reg0", 0) and hash(a) == hash((5, "reg0", 0)) and isinstance(a, tuple)
        assert a.text() == "load:0x5->reg0[0]" and cls.__doc__ == "Loads a value into a field."
        assert cls._fields == ("value", "dst", "ofs") and cls._field_defaults == {"ofs": 0}
        assert a._replace(ofs=3) == cls(5, "reg0", 3) and a._asdict() == {"value": 5, "dst": "reg0", "ofs": 0}
        assert repr(a) == "Load(value=5, dst='reg0', ofs=0)" and cls.__qualname__.endswith("make.<locals>.Load")
        assert copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(_Pair(1))) == _Pair(1, 2)
    with pytest.raises(TypeError, match="Non-default namedtuple field"):
        class Bad(records.NamedTuple):
            """A required field after a default."""

            a: int = 0
            b: int  # type: ignore[misc]
    with pytest.raises(AttributeError, match="Cannot overwrite NamedTuple attribute _make"):
        class Worse(records.NamedTuple):
            """Overwrites namedtuple's own."""

            a: int

            def _make(self) -> None:  # type: ignore[override]
                pass


class _Pair(records.NamedTuple):
    """Module level so pickle can find it."""

    a: int
    b: int = 2
