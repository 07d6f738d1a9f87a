"""`dataclass`/`field`/`replace` for the value types of the short-lived commands, without the stdlib's
`dataclasses` module.

`import dataclasses` pulls in `inspect` (with ast, dis, tokenize): ~13 ms of every tpctl, tpctl trace and
tpcni start, and each decorated class costs a few more exec() calls. This builds the same classes for the
subset TupleNet uses - `frozen`, `slots`, `eq`, `repr`, defaults, `field(default=, default_factory=,
compare=, repr=)`, `__post_init__` - with one generated source per class. Anything else (order, kw_only,
InitVar, inherited fields) is refused at decoration time, so a class needing it uses the stdlib instead.

The classes stay dataclasses to the stdlib: `__dataclass_fields__` is computed (importing `dataclasses`) when
first read, so `dataclasses.replace/fields/asdict/is_dataclass` keep working for callers that already pay
for that import.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_MISSING = object()


class Field:
    __slots__ = ("name", "type", "default", "default_factory", "compare", "repr")

    def __init__(self, default: Any, default_factory: Any, compare: bool, repr: bool) -> None:  # noqa: A002
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | Any = _MISSING, compare: bool = True,
          repr: bool = True) -> Any:  # noqa: A002 - dataclasses.field's own argument names
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr)


class FrozenInstanceError(AttributeError):
    """Raised on assignment to a frozen record (the stdlib's is also an AttributeError)."""


class _StdlibFields:
    """`__dataclass_fields__`, built with the stdlib's Field objects on first read."""

    def __get__(self, obj: Any, cls: type) -> dict[str, Any]:
        import dataclasses

        built = cls.__dict__.get("_stdlib_fields")
        if built is None:
            built = {}
            for f in cls.__record_fields__:
                kw: dict[str, Any] = {"compare": f.compare, "repr": f.repr}
                if f.default is not _MISSING:
                    kw["default"] = f.default
                if f.default_factory is not _MISSING:
                    kw["default_factory"] = f.default_factory
                std = dataclasses.field(**kw)
                std.name, std.type, std._field_type = f.name, f.type, dataclasses._FIELD  # type: ignore[attr-defined]
                built[f.name] = std
            type.__setattr__(cls, "_stdlib_fields", built)
        return built


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _fields_of(cls: type) -> list[Field]:
    for base in cls.__mro__[1:]:
        if "__record_fields__" in base.__dict__ or "__dataclass_fields__" in base.__dict__:
            raise TypeError(f"{cls.__name__}: inherited record fields are not supported")
    out: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        if "InitVar" in (annotation if isinstance(annotation, str) else repr(annotation)):
            raise TypeError(f"{cls.__name__}.{name}: InitVar is not supported")
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(value, _MISSING, True, True)
        if isinstance(f.default, (list, dict, set)):
            raise ValueError(f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory")
        f.name, f.type = name, annotation
        out.append(f)
    seen_default = False
    for f in out:
        has_default = f.default is not _MISSING or f.default_factory is not _MISSING
        if seen_default and not has_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
        seen_default = seen_default or has_default
    return out


def _init_source(fields: list[Field], frozen: bool, post_init: bool) -> str:
    """__init__ is the one generated method (it runs for every value built); the others are shared code."""
    params, body = [], []
    for f in fields:
        if f.default_factory is not _MISSING:
            params.append(f"{f.name}=_MISSING")
            value = f"_factory_{f.name}() if {f.name} is _MISSING else {f.name}"
        elif f.default is not _MISSING:
            params.append(f"{f.name}=_default_{f.name}")
            value = f.name
        else:
            params.append(f.name)
            value = f.name
        body.append(f"    _setattr(self, {f.name!r}, {value})" if frozen else f"    self.{f.name} = {value}")
    if post_init:
        body.append("    self.__post_init__()")
    return "\n".join([f"def __init__(self, {', '.join(params)}):", *(body or ["    pass"])]) + "\n"


def _key_of(names: tuple[str, ...]) -> Callable[[Any], tuple]:
    """The tuple of `names` of a value (what the stdlib's __eq__ and __hash__ compare)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def _methods(fields: list[Field], frozen: bool, eq: bool) -> dict[str, Callable[..., Any]]:
    names = tuple(f.name for f in fields)
    shown = tuple(f.name for f in fields if f.repr)
    key = _key_of(tuple(f.name for f in fields if f.compare))

    def __repr__(self: Any) -> str:
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(key(self))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self: Any, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, n) for n in names]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)

    out: dict[str, Callable[..., Any]] = {"__repr__": __repr__}
    if eq:
        out["__eq__"] = __eq__
    if eq and frozen:
        out["__hash__"] = __hash__
    if frozen:
        out.update(__setattr__=__setattr__, __delattr__=__delattr__, __getstate__=__getstate__,
                   __setstate__=__setstate__)
    return out


def _build(cls: type, frozen: bool, slots: bool, eq: bool) -> type:
    fields = _fields_of(cls)
    names = tuple(f.name for f in fields)
    scope: dict[str, Any] = {"_MISSING": _MISSING, "_setattr": object.__setattr__}
    for f in fields:
        scope[f"_default_{f.name}"] = f.default
        scope[f"_factory_{f.name}"] = f.default_factory
    methods = _methods(fields, frozen, eq)
    exec(_init_source(fields, frozen, hasattr(cls, "__post_init__")), scope, methods)  # noqa: S102
    own = cls.__dict__
    keep = {"__repr__"} & own.keys() | {"__eq__"} & own.keys()  # the stdlib keeps methods the class wrote
    if "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own):
        keep.add("__hash__")
    if slots:
        body = {k: v for k, v in own.items() if k not in names and k not in ("__dict__", "__weakref__")}
        body["__slots__"] = names
        qualname = cls.__qualname__
        cls = type(cls)(cls.__name__, cls.__bases__, body)
        cls.__qualname__ = qualname
    else:
        for f in fields:  # class attributes keep plain defaults, as the stdlib leaves them
            if isinstance(cls.__dict__.get(f.name), Field):
                if f.default is _MISSING:
                    delattr(cls, f.name)
                else:
                    setattr(cls, f.name, f.default)
    for name, fn in methods.items():
        if name not in keep:
            fn.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, fn)
    if eq and not frozen and "__hash__" not in keep:
        cls.__hash__ = None  # type: ignore[assignment]
    cls.__record_fields__ = tuple(fields)  # type: ignore[attr-defined]
    cls.__match_args__ = names  # type: ignore[attr-defined]
    cls.__dataclass_fields__ = _StdlibFields()  # type: ignore[attr-defined]
    return cls


def dataclass(cls: type | None = None, /, *, frozen: bool = False, slots: bool = False, eq: bool = True,
              **unsupported: Any) -> Any:
    """@dataclass, @dataclass(frozen=True, slots=True, eq=False): see the module docstring."""
    if unsupported:
        raise TypeError(f"tuplenet.records.dataclass does not support {sorted(unsupported)}: use the stdlib's")

    def wrap(c: type) -> type:
        return _build(c, frozen, slots, eq)

    return wrap if cls is None else wrap(cls)


def replace(obj: Any, /, **changes: Any) -> Any:
    """A copy of record `obj` with `changes` (dataclasses.replace for records)."""
    for f in type(obj).__record_fields__:
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


# ---- NamedTuple ------------------------------------------------------------------------------------------

_NT_PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                            "_make", "_replace", "_asdict", "_source"})
_NT_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _NamedTupleMeta(type):
    """`class P(NamedTuple): x: int; y: int = 0` as typing builds it (collections.namedtuple plus the class's
    own methods and docstring), minus typing's per-field ForwardRef compile, ~0.1 ms per class."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:  # noqa: N804
        if bases != (NamedTuple,):
            raise TypeError("tuplenet.records.NamedTuple: inherit from NamedTuple alone")
        import collections

        annotations = ns.get("__annotations__", {})
        defaults: list[str] = []
        for field_name in annotations:
            if field_name in ns:
                defaults.append(field_name)
            elif defaults:
                raise TypeError(f"Non-default namedtuple field {field_name} cannot follow default field"
                                f"{'s' if len(defaults) > 1 else ''} {', '.join(defaults)}")
        cls = collections.namedtuple(name, list(annotations), defaults=[ns[n] for n in defaults],
                                     module=ns["__module__"])
        cls.__annotations__ = cls.__new__.__annotations__ = dict(annotations)
        for key, value in ns.items():
            if key in _NT_PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _NT_SPECIAL and key not in cls._fields:
                setattr(cls, key, value)
        return cls


NamedTuple = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})
"""Base for typing-style named tuple classes, without importing typing (see _NamedTupleMeta)."""
