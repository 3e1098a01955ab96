"""Driving a user's code as it is written, from a plan of plain data (the worker's side).

A *plan* says how one problem becomes calls of the user's code: which functions or which
class, what each call gets (arrays by part name, sizes, the state carried between steps, the
forward's cache), at which level (one call for the loss and gradients, a forward and a
backward over the whole sequence, or one forward and one backward per step, chained here),
one example per call or the whole batch, and where each gradient comes back (a position or
key of a return value, an attribute, an entry of a `grads` list or dict). The checker builds
plans (`plan.py`); this module only executes them, so it imports nothing of symbptt: the
standard library and NumPy (it runs in the worker's fresh interpreter).

A plan that does not fit the code (a selector that finds nothing, a return that is not a
tuple) raises `CallConventionError`: the check was set up wrong, the code is not wrong.

Selectors are lists of steps from a root ("return": what the call returned; "object": the
instance): ["index", k], ["key", k], ["keys", [k1, k2]] (the first present), ["attr", name],
["last"]. Arguments are ["array", part], ["data", name] (x_t, h, c, dnext_h, dnext_c, dh_t,
cache, x, dh, ...), ["size", letter], ["value", v], ["dict", {key: arg}], ["list", [args]],
["none"].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["CallConventionError", "PlanRunner", "inventory", "structure"]


class CallConventionError(Exception):
    """The user's code does not fit the declared style (what it takes or returns): a usage
    error of the check, reported as such, never as a wrong gradient."""


class Absent(Exception):
    """A gradient the code did not return (a dict without its key): not returned, which the
    checker reports as such."""


# -- selectors and arguments -------------------------------------------------------------------


def _describe(value: Any) -> str:
    name = type(value).__name__
    if isinstance(value, (tuple, list)):
        return f"a {name} of length {len(value)}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a value of type {name}"


def select(root: Any, path: list, what: str) -> Any:
    """The value at path from root; CallConventionError naming what was looked for."""
    value = root
    for step in path:
        kind = step[0]
        try:
            if kind == "index":
                if not isinstance(value, (tuple, list)):
                    raise CallConventionError(f"{what}: expected a tuple, got {_describe(value)}")
                value = value[step[1]]
            elif kind == "last":
                if not isinstance(value, (tuple, list)) or not value:
                    raise CallConventionError(f"{what}: expected a tuple, got {_describe(value)}")
                value = value[-1]
            elif kind == "key":
                value = value[step[1]]
            elif kind == "keys":
                for key in step[1]:
                    if isinstance(value, Mapping) and key in value:
                        value = value[key]
                        break
                else:
                    raise Absent(what)
            elif kind == "item":  # a dict's key (any of the names), or a tuple's position
                index, keys = step[1], step[2]
                if isinstance(value, Mapping):
                    for key in keys:
                        if key in value:
                            value = value[key]
                            break
                    else:
                        raise Absent(what)
                elif isinstance(value, (tuple, list)):
                    if index == -1:  # a declared order without this one
                        raise Absent(what)
                    if index is None:
                        raise CallConventionError(
                            f"returned its gradients as a {type(value).__name__}; declare "
                            "their order (order=... in Python, --order on the command line)"
                        )
                    value = value[index]
                else:
                    raise CallConventionError(
                        f"returned gradients as {_describe(value)}; return a dict keyed by "
                        "parameter name, or a tuple with a declared order"
                    )
            elif kind == "attr":
                value = getattr(value, step[1])
            else:
                raise CallConventionError(f"unknown selector step {step!r}")
        except (CallConventionError, Absent):
            raise
        except (IndexError, KeyError, AttributeError, TypeError) as exc:
            raise CallConventionError(
                f"{what}: {type(exc).__name__}: {exc} (looking for {_path_text(path)})"
            ) from None
    return value


def _path_text(path: list) -> str:
    out = ""
    for step in path:
        if step[0] == "index":
            out += f"[{step[1]}]"
        elif step[0] == "key":
            out += f"[{step[1]!r}]"
        elif step[0] == "keys":
            out += f"[{step[1][0]!r}]"
        elif step[0] == "attr":
            out += f".{step[1]}"
        elif step[0] == "last":
            out += "[-1]"
    return out or "the value"


def _assign(root: Any, path: list, value: np.ndarray) -> None:
    """Put value where path points, into the existing array when it has the same shape (so
    that every alias of it, such as an entry of `self.params`, sees the new values)."""
    holder = select(root, path[:-1], "binding a parameter") if len(path) > 1 else root
    kind, key = path[-1][0], path[-1][1] if len(path[-1]) > 1 else None
    try:
        current = getattr(holder, key) if kind == "attr" else holder[key]
    except (AttributeError, KeyError, IndexError, TypeError):
        current = None
    if isinstance(current, np.ndarray) and current.shape == value.shape and current.flags.writeable:
        current[...] = value
        return
    if kind == "attr":
        setattr(holder, key, value)
    elif kind in ("key", "index"):
        holder[key] = value
    else:
        raise CallConventionError(f"cannot bind a parameter at {_path_text(path)}")


# -- the runner --------------------------------------------------------------------------------


class PlanRunner:
    """One callable the worker serves: `runner(plan=..., arrays=..., sizes=...)` runs one
    problem through the user's code as the plan says and returns its answer as plain data:
    {"loss": ..., "grads": {part: array}} (or, with `probe`, what the calls returned)."""

    def __init__(self, objects: list) -> None:
        self.objects = objects

    def __call__(self, *, plan: dict, arrays: dict, sizes: dict, probe: bool = False) -> dict:
        run = _Run(self.objects, plan, arrays, sizes, probe)
        return run.result()


class _Run:
    """One problem run through a plan."""

    def __init__(self, objects, plan, arrays, sizes, probe) -> None:
        self.objects, self.plan, self.sizes, self.probe = objects, plan, sizes, probe
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.seen: dict[str, Any] = {}  # probe: the structure of what came back
        self.seen_container: dict | None = None

    # -- arguments -------------------------------------------------------------------------
    def arg(self, spec: Any, data: Mapping[str, Any]) -> Any:
        kind = spec[0]
        if kind == "array":
            if spec[1] not in data["arrays"]:
                raise CallConventionError(f"the plan passes {spec[1]!r}, which this model lacks")
            return np.array(data["arrays"][spec[1]], copy=True)  # the user may write into it
        if kind == "data":
            if spec[1] not in data:
                raise CallConventionError(f"the plan passes {spec[1]!r}, which is not known here")
            value = data[spec[1]]
            return np.array(value, copy=True) if isinstance(value, np.ndarray) else value
        if kind == "size":
            return int(self.sizes[spec[1]])
        if kind == "value":
            return spec[1]
        if kind == "none":
            return None
        if kind == "dict":
            return {key: self.arg(item, data) for key, item in spec[1].items()}
        if kind == "list":
            return [self.arg(item, data) for item in spec[1]]
        raise CallConventionError(f"unknown argument kind {kind!r}")

    def call(self, spec: dict, data: Mapping[str, Any], instance: Any = None) -> Any:
        if spec.get("method") is not None:
            target = instance if instance is not None else self.objects[spec.get("fn", 0)]
            fn = getattr(target, spec["method"], None)
            if fn is None:
                raise CallConventionError(
                    f"{type(target).__name__} has no method {spec['method']!r}"
                )
        else:
            fn = self.objects[spec.get("fn", 0)]
        args = [self.arg(a, data) for a in spec.get("args", [])]
        kwargs = {k: self.arg(a, data) for k, a in spec.get("kwargs", {}).items()}
        return fn(*args, **kwargs)

    # -- objects -----------------------------------------------------------------------------
    def build(self, data: Mapping[str, Any]) -> Any:
        spec = self.plan["object"]
        cls = self.objects[spec.get("class", 0)]
        kwargs = {k: self.arg(a, data) for k, a in spec.get("kwargs", {}).items()}
        instance = cls(*[self.arg(a, data) for a in spec.get("args", [])], **kwargs)
        for action in spec.get("prepare", []):
            self.act(instance, action, data)
        return instance

    def act(self, instance: Any, action: dict, data: Mapping[str, Any]) -> None:
        if "call" in action:
            fn = getattr(instance, action["call"], None)
            if fn is None:
                raise CallConventionError(
                    f"{type(instance).__name__} has no method {action['call']!r}"
                )
            fn(
                *[self.arg(a, data) for a in action.get("args", [])],
                **{k: self.arg(a, data) for k, a in action.get("kwargs", {}).items()},
            )
        elif "bind" in action:
            _assign(instance, action["bind"], np.array(self.arg(action["value"], data), copy=True))
        elif "set" in action:
            setattr(instance, action["set"], self.arg(action["value"], data))
        else:
            raise CallConventionError(f"unknown action {action!r}")

    # -- levels ------------------------------------------------------------------------------
    def result(self) -> dict:
        level = self.plan["level"]
        # One example per call: a loop over the batch (the data's leading axis).
        one = self.plan.get("examples") == "one"
        examples = range(int(self.sizes["N"])) if one else [None]
        total: dict = {"loss": None, "grads": {}}
        per_example: dict[str, list] = {}
        for n in examples:
            arrays = self.arrays if n is None else self._example(n)
            run = {
                "full": self.full,
                "sequence": self.sequence,
                "step": self.steps,
                "build": self.built,
            }[level]
            answer = run(arrays)
            if answer.get("loss") is not None:
                total["loss"] = (
                    answer["loss"] if total["loss"] is None else total["loss"] + answer["loss"]
                )
            for part, value in answer["grads"].items():
                if part in self.plan.get("stacked", ()):  # data gradients: one per example
                    per_example.setdefault(part, []).append(value)
                elif part in total["grads"]:
                    total["grads"][part] = _add(total["grads"][part], value, part)
                else:
                    total["grads"][part] = _own(value)
        for part, values in per_example.items():
            try:
                total["grads"][part] = np.stack([np.asarray(v, dtype=float) for v in values])
            except ValueError:  # examples of different shapes: reported as the first's
                total["grads"][part] = values[0]
        if self.probe:
            total["seen"] = self.seen
        if self.seen_container is not None:
            total["container"] = self.seen_container
        return total

    def _example(self, n: int) -> dict:
        """Example n's arrays: the data carry the examples on their leading axis."""
        examples = set(self.plan.get("per_example", ()))
        return {k: (v[n] if k in examples else v) for k, v in self.arrays.items()}

    def _data(self, arrays: dict) -> dict:
        data = {"arrays": arrays, **{k: v for k, v in arrays.items()}}
        if "x" in arrays:  # the first step's input (a lazily built object's warm-up call)
            axis = self.plan.get("time_axis", {}).get("x", 0)
            try:
                data["x_0"] = np.take(arrays["x"], 0, axis=axis)
            except (IndexError, ValueError, np.exceptions.AxisError):
                pass
        return data

    def _grads(self, roots: dict, which: dict) -> dict:
        out = {}
        for part, path in which.items():
            root, rest = path[0], path[1:]
            if root not in roots:
                continue
            try:
                out[part] = select(roots[root], [list(s) for s in rest], f"the gradient {part}")
            except Absent:
                continue
        return out

    def _container(self, result: Any) -> None:
        """What the gradients came back in: a dict's keys or a tuple's length (the checker
        names keys nobody claims, and a tuple of the wrong length)."""
        where = self.plan.get("container")
        if where is None:
            return
        try:
            value = select(result, where, "the gradients")
        except (CallConventionError, Absent):
            return
        if isinstance(value, Mapping):
            self.seen_container = {"dict": [str(k) for k in list(value)[:256]]}
        elif isinstance(value, (tuple, list)):
            items = [v if isinstance(v, np.ndarray) else None for v in value[:64]]
            self.seen_container = {"tuple": len(value), "items": items}
        else:
            self.seen_container = {"other": _describe(value)}

    def built(self, arrays: dict) -> dict:
        """Only build an instance (and run its prepare actions): its arrays, for the search."""
        instance = self.build(self._data(arrays))
        self.seen["built"] = inventory(instance)
        forward = self.plan.get("forward") or {}
        if forward.get("method") and forward.get("args"):  # a warm-up call, then its arrays
            self.call(forward, self._data(arrays), instance)
            self.seen["warm"] = inventory(instance)
        return {"grads": {}}

    def full(self, arrays: dict) -> dict:
        """One call: (loss, grads)."""
        data = self._data(arrays)
        instance = self.build(data) if self.plan.get("object") else None
        result = self.call(self.plan["forward"], data, instance)
        if self.probe:
            self.seen["forward"] = structure(result)
        arity = self.plan.get("returns")
        if arity is not None and not (isinstance(result, (tuple, list)) and len(result) == arity):
            raise CallConventionError(
                f"returned {_describe(result)}; the full form must return a pair (loss, grads)"
            )
        self._container(result)
        where = self.plan.get("loss")
        loss = select(result, where, "the loss") if where is not None else None
        roots = {"return": result, "object": instance}
        return {"loss": loss, "grads": self._grads(roots, self.plan["grads"])}

    def sequence(self, arrays: dict) -> dict:
        """A forward and a backward over the whole sequence (functions or one object)."""
        data = self._data(arrays)
        instance = self.build(data) if self.plan.get("object") else None
        if self.probe and instance is not None:
            self.seen["built"] = inventory(instance)
        out = self.call(self.plan["forward"], data, instance)
        if self.probe:
            self.seen["forward"] = structure(out)
        cache = self.plan.get("cache")
        if cache is not None:
            data["cache"] = select(out, cache, "the forward's cache")
        back = self.call(self.plan["backward"], data, instance)
        if self.probe:
            self.seen["backward"] = structure(back)
        self._container(back)
        for action in self.plan.get("after", []):
            self.act(instance, action, data)
        if self.probe and instance is not None:
            self.seen["after"] = inventory(instance)
        roots = {"return": back, "object": instance, "forward": out}
        return {"grads": self._grads(roots, self.plan["grads"])}

    def steps(self, arrays: dict) -> dict:
        """One forward per step, then one backward per step in reverse, chained here: the
        state goes forward, its gradient back. Gradients a backward returns, and those a
        fresh instance per step holds, are summed over the steps; one instance for the whole
        sequence is read once, after the last backward (it accumulates them itself)."""
        plan = self.plan
        data = self._data(arrays)
        T = int(self.sizes["T"])
        axis = plan.get("time_axis", {})
        states = plan.get("states", ["h"])
        state = {s: data.get(f"{s}0") for s in states}
        built = plan.get("object")
        shared = self.build(data) if built and built.get("instances") == "one" else None
        if self.probe and shared is not None:
            self.seen["built"] = inventory(shared)

        def at(t: int) -> dict:
            step = dict(data)
            for name, k in axis.items():
                if name in arrays:
                    step[f"{name}_t"] = np.take(arrays[name], t, axis=k)
            return step

        instances, caches = [], []
        for t in range(T):
            step = at(t)
            for s in states:
                step[s] = state[s]
            instance = shared if shared is not None or not built else self.build(step)
            out = self.call(plan["forward"], step, instance)
            if self.probe and t == 0:
                self.seen["forward"] = structure(out)
            for s in states:
                where = plan.get("next", {}).get(s)
                if where is not None:
                    state[s] = select(out, where, f"the forward's next {s}")
            cache = plan.get("cache")
            caches.append(select(out, cache, "the forward's cache") if cache is not None else None)
            instances.append(instance)
        by_object = plan.get("carry") == "object"
        carry = {s: np.zeros(np.shape(state[s])) for s in states}
        back_out = plan.get("back", {})
        dx: list = [None] * T
        grads: dict = {}
        summed = {p: w for p, w in plan["grads"].items() if w[0] == "return" or shared is None}
        for t in reversed(range(T)):
            step = at(t)
            upstream = step.get("dh_t")
            if by_object or upstream is None:
                step["dnext_h"] = upstream
            else:
                step["dnext_h"] = upstream + carry["h"]
            for s in states[1:]:
                step[f"dnext_{s}"] = carry[s]
            step["cache"] = caches[t]
            back = self.call(plan["backward"], step, instances[t])
            if t == T - 1:
                if self.probe:
                    self.seen["backward"] = structure(back)
                    if shared is None and instances[t] is not None:
                        self.seen["after"] = inventory(instances[t])
                self._container(back)
            for action in plan.get("after", []):
                self.act(instances[t], action, step)
            if "x" in back_out:
                dx[t] = np.asarray(select(back, back_out["x"], "dx"), dtype=float)
            if not by_object:
                for s in states:
                    if s in back_out:
                        where = back_out[s]
                        carry[s] = np.asarray(select(back, where, f"d{s}_prev"), dtype=float)
            roots = {"return": back, "object": instances[t]}
            for part, value in self._grads(roots, summed).items():
                grads[part] = _add(grads[part], value, part) if part in grads else _own(value)
        if shared is not None:
            if self.probe:
                self.seen["after"] = inventory(shared)
            rest = {p: w for p, w in plan["grads"].items() if p not in summed}
            grads.update(self._grads({"object": shared}, rest))
        if "x" in back_out and all(d is not None for d in dx):
            try:
                grads["x"] = np.stack(dx, axis=axis.get("x", 0))
            except ValueError:
                grads["x"] = dx[0]
        if not by_object:
            for s in states:
                if f"{s}0" in plan.get("initials", ()):
                    grads[f"{s}0"] = carry[s]
        return {"grads": grads}


def _own(value: Any) -> Any:
    """A copy of an array the user may reuse and overwrite on the next call."""
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    return value


def _add(total: Any, value: Any, part: str) -> Any:
    try:
        a, b = np.asarray(total, dtype=float), np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return total  # not numbers: the parent reports what came back
    if a.shape != b.shape:
        return total  # a shape that changes from step to step stays wrong
    return a + b


# -- what came back ------------------------------------------------------------------------------


def structure(value: Any, depth: int = 0) -> Any:
    """A plain description of a returned value: arrays as their shapes, containers as the
    same containers of descriptions (what the checker's search reads)."""
    if depth > 4:
        return {"type": type(value).__name__}
    if isinstance(value, np.ndarray):
        return {"array": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return {"scalar": type(value).__name__}
    if isinstance(value, (np.generic,)):
        return {"scalar": str(value.dtype)}
    if isinstance(value, (tuple, list)):
        return {type(value).__name__: [structure(v, depth + 1) for v in value[:64]]}
    if isinstance(value, Mapping):
        items = list(value.items())[:128]
        return {"dict": [[str(k), structure(v, depth + 1)] for k, v in items]}
    if hasattr(value, "__dict__"):
        return {"object": type(value).__name__}
    return {"type": type(value).__name__}


def inventory(instance: Any) -> dict:
    """An object's attributes that hold arrays (directly, or in a list or dict): name ->
    structure. Methods and other objects are left out."""
    out = {}
    try:
        items = list(vars(instance).items())
    except TypeError:
        return out
    for name, value in items[:256]:
        if isinstance(value, np.ndarray):
            out[name] = structure(value)
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, np.ndarray) for v in value[:64])
        ):
            out[name] = structure(value)
        elif (
            isinstance(value, Mapping)
            and value
            and any(isinstance(v, np.ndarray) for v in list(value.values())[:128])
        ):
            out[name] = structure(value)
        elif isinstance(value, (bool, int, float)) or value is None:
            out[name] = structure(value)
    return out


def signature_of(fn: Callable) -> list | None:
    """A function's parameters as [name, kind, has_default] (None when it has no signature)."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [
        [p.name, p.kind.name, p.default is not inspect.Parameter.empty]
        for p in sig.parameters.values()
    ]
