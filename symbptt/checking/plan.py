"""How one problem becomes calls of a user's code: the `Plan` value (the checker's side).

A plan is plain data the worker executes (`drivers.py`): at which *level* the code works (one
call for the loss and gradients, a forward and a backward over the whole sequence, or one
forward and one backward per step, chained by the worker), what each call gets, whether the
code is a class (built how, with which parameters bound where), one example per call or the
batch, and where every gradient comes back. Arrays travel by *part* name (`convention.py`), in
the user's own layout.

Argument specs: ("array", part), ("data", name), ("size", letter), ("value", v), ("none",),
("dict", {key: spec}), ("list", [specs]). Selectors: a root ("return", "object", "forward")
followed by steps ("index", k), ("key", k), ("keys", [k, ...]), ("attr", name), ("last",).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["Call", "Built", "Plan", "LEVELS"]

#: "build" only builds an instance and reports its arrays (the search's first look).
LEVELS = ("full", "sequence", "step", "build")


def _plain(value: Any) -> Any:
    """Tuples to lists, mappings to dicts: what the wire and TOML carry."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    """Lists to tuples (hashable, comparable), mappings kept as sorted tuples of pairs."""
    if isinstance(value, Mapping):
        return {str(k): _frozen(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Call:
    """One call: loaded object `fn` (or its method `method`, or the instance's), with
    arguments."""

    fn: int = 0
    method: str | None = None
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", _frozen(self.args))
        object.__setattr__(self, "kwargs", _frozen(dict(self.kwargs)))

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"fn": self.fn}
        if self.method is not None:
            out["method"] = self.method
        if self.args:
            out["args"] = _plain(self.args)
        if self.kwargs:
            out["kwargs"] = _plain(self.kwargs)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Call:
        unknown = set(data) - {"fn", "method", "args", "kwargs"}
        if unknown:
            raise InvalidArgumentError(f"a call has the unknown key {sorted(unknown)[0]!r}")
        return cls(**dict(data))

    def names(self) -> set[str]:
        """The parts this call passes."""
        found: set[str] = set()

        def walk(spec: Any) -> None:
            if isinstance(spec, tuple) and spec and spec[0] == "array":
                found.add(spec[1])
            elif isinstance(spec, tuple) and spec and spec[0] in ("dict", "list"):
                items = spec[1].values() if isinstance(spec[1], Mapping) else spec[1]
                for item in items:
                    walk(item)

        for spec in (*self.args, *self.kwargs.values()):
            walk(spec)
        return found


@dataclass(frozen=True)
class Built:
    """How an instance of the user's class is made: the class (loaded object `cls`), the
    constructor's arguments, what is done after (bind parameters, call a setter), and
    whether there is one instance for the whole sequence or a fresh one per step."""

    cls: int = 0
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    prepare: tuple = ()
    instances: str = "one"

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", _frozen(self.args))
        object.__setattr__(self, "kwargs", _frozen(dict(self.kwargs)))
        object.__setattr__(self, "prepare", _frozen(self.prepare))
        if self.instances not in ("one", "per-step"):
            raise InvalidArgumentError(f"instances={self.instances!r} must be 'one' or 'per-step'")

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"class": self.cls, "instances": self.instances}
        if self.args:
            out["args"] = _plain(self.args)
        if self.kwargs:
            out["kwargs"] = _plain(self.kwargs)
        if self.prepare:
            out["prepare"] = _plain(self.prepare)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Built:
        data = dict(data)
        if "class" in data:
            data["cls"] = data.pop("class")
        unknown = set(data) - {"cls", "args", "kwargs", "prepare", "instances"}
        if unknown:
            raise InvalidArgumentError(f"an object has the unknown key {sorted(unknown)[0]!r}")
        return cls(**data)


@dataclass(frozen=True)
class Plan:
    """How one problem becomes calls of the user's code (see the module's docstring)."""

    level: str
    forward: Call
    backward: Call | None = None
    object: Built | None = None
    #: Where the forward's cache is in what it returned (passed to the backward as "cache").
    cache: tuple | None = None
    #: Where the loss is (the full level).
    loss: tuple | None = None
    #: The full level: how many values the call must return (2: (loss, grads)).
    returns: int | None = None
    #: Part -> where its gradient comes back.
    grads: Mapping[str, tuple] = field(default_factory=dict)
    #: Where the container of the returned gradients is (to name keys nobody claims).
    container: tuple | None = None
    #: Step level: state -> where the forward's next state is; "x"/"h"/"c" -> where the
    #: backward's dx_t, dprev_h, dprev_c are.
    next: Mapping[str, tuple] = field(default_factory=dict)
    back: Mapping[str, tuple] = field(default_factory=dict)
    states: tuple[str, ...] = ("h",)
    #: Step level: the initial states whose gradients the chain's final carry gives.
    initials: tuple[str, ...] = ()
    #: Step level: "driver" (the worker adds dh_t and the carried gradient) or "object" (the
    #: code carries it; only dh_t is passed).
    carry: str = "driver"
    #: Actions on the instance after each backward (a separate compute-gradients step).
    after: tuple = ()
    #: "batch", or "one": a loop over the examples (the data's leading axis).
    examples: str = "batch"
    #: Step level: the axis of T in the data the steps are cut from ("x", "dh", "y").
    time_axis: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InvalidArgumentError(f"level={self.level!r} must be one of {', '.join(LEVELS)}")
        if self.examples not in ("batch", "one"):
            raise InvalidArgumentError(f"examples={self.examples!r} must be 'batch' or 'one'")
        if self.carry not in ("driver", "object"):
            raise InvalidArgumentError(f"carry={self.carry!r} must be 'driver' or 'object'")
        if self.level not in ("full", "build") and self.backward is None:
            raise InvalidArgumentError(f"a {self.level}-level plan needs a backward call")
        for name in ("cache", "loss", "container"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value))
        for name in ("grads", "next", "back", "time_axis"):
            object.__setattr__(self, name, _frozen(dict(getattr(self, name))))
        object.__setattr__(self, "after", _frozen(self.after))
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "initials", tuple(self.initials))

    def with_grads(self, grads: Mapping[str, Sequence]) -> Plan:
        return replace(self, grads=dict(grads))

    def passes(self) -> set[str]:
        """Every part some call passes (or binds)."""
        found = self.forward.names()
        if self.backward is not None:
            found |= self.backward.names()
        if self.object is not None:
            found |= Call(args=self.object.args, kwargs=self.object.kwargs).names()
            for action in self.object.prepare:
                if "value" in action:
                    found |= Call(args=(action["value"],)).names()
                found |= Call(args=action.get("args", ()), kwargs=action.get("kwargs", {})).names()
        return found

    def to_wire(self, per_example: Sequence[str] = (), stacked: Sequence[str] = ()) -> dict:
        """The plan as the worker reads it."""
        out = self.as_dict()
        if self.object is not None:
            out["object"] = self.object.as_dict()
        out["per_example"] = list(per_example)
        out["stacked"] = list(stacked)
        out["examples"] = "one" if per_example else self.examples
        return out

    def as_dict(self) -> dict:
        """Plain data (TOML, JSON); defaults left out."""
        out: dict[str, Any] = {"level": self.level, "forward": self.forward.as_dict()}
        default = Plan(level="full", forward=Call())
        for f in fields(self):
            if f.name in ("level", "forward"):
                continue
            value = getattr(self, f.name)
            if value == getattr(default, f.name) or value is None:
                continue
            if isinstance(value, (Call, Built)):
                out[f.name] = value.as_dict()
            else:
                out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        known = {f.name for f in fields(cls)}
        data = dict(data)
        unknown = set(data) - known
        if unknown:
            raise InvalidArgumentError(
                f"the call plan has the unknown key {sorted(unknown)[0]!r}; keys are "
                f"{', '.join(sorted(known))}"
            )
        if "level" not in data or "forward" not in data:
            raise InvalidArgumentError("the call plan needs a level and a forward call")
        data["forward"] = Call.from_dict(data["forward"])
        if data.get("backward") is not None:
            data["backward"] = Call.from_dict(data["backward"])
        if data.get("object") is not None:
            data["object"] = Built.from_dict(data["object"])
        return cls(**data)
