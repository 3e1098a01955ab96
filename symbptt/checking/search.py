"""Finding how a user's code holds the model's arrays: the convention search.

When code does not fit the declared (or default) convention, the search looks for one that
fits: ways to call it (`infer.skeletons`), then, for each, the conventions whose arrays have
the shapes the code takes (one call each: a call with the wrong shapes fails at once), then,
by values, the re-arrangements those shapes leave open (gate order, the order of stacked
rows, the GRU's update, which same-shaped slot holds which gate): one call of the user's code
gives an answer, and every candidate's truth is computed here (the model at the point the
code saw, laid out as the candidate says), so 24 gate orders cost one call.

A candidate that is right on that problem is confirmed on three fresh ones before it is
offered; none is ever used for a verdict without the report saying so.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import UserFunctionError, WorkerDiedError
from ..models.dims import Dims
from ..models.spec import MODEL_OPTIONS, ModelSpec
from . import names as N
from .convention import Convention, parts_of
from .infer import Skeleton, skeletons
from .plan import Call, Plan
from .source import SourceFacts, read_facts
from .usercode import Calling, UserAnswer

__all__ = ["Found", "Candidate", "search", "PROBE_DIMS"]

#: Sizes that tell every axis apart (N, T, D, H, C, 3H, 4H, H+D, 1+D+H all differ).
PROBE_DIMS = Dims(N=3, D=2, H=5, C=6, T=4)
#: At most this many candidates are judged by values in one class (gate orders, ...).
MAX_VARIANTS = 400


@dataclass
class Candidate:
    """One way to call the code, and how well it did on the probe problem."""

    calling: Calling
    skeleton: Skeleton
    right: int = 0
    judged: int = 0
    error: str | None = None
    #: The share of wrong entries, averaged over the arrays (0 .. 1): the closest breaks ties.
    distance: float = 1.0

    @property
    def perfect(self) -> bool:
        return self.error is None and self.judged > 0 and self.right == self.judged


@dataclass
class Found:
    """What the search found: the best candidate, whether it makes the code right (confirmed
    on fresh problems), and how many were tried."""

    best: Candidate | None
    fits: bool
    tried: int
    errors: list[str] = field(default_factory=list)


# -- candidates ------------------------------------------------------------------------------


def _data_roles(skeleton: Skeleton) -> set[str]:
    found = set()

    def walk(spec):
        if (
            isinstance(spec, tuple)
            and spec
            and spec[0] == "array"
            and spec[1] in ("x", "y", "h0", "c0", "dh")
        ):
            found.add(spec[1])

    plan = skeleton.plan
    for call in (plan.forward, plan.backward):
        if call is not None:
            for a in (*call.args, *call.kwargs.values()):
                walk(a)
    return found


def _layout_hints(facts: SourceFacts, slots) -> list[str]:
    """Row or column, from the products the source writes (x @ W or W @ x)."""
    row = column = 0
    slotset = set(slots)
    data = {
        "x",
        "xt",
        "x_t",
        "xs",
        "h",
        "h_prev",
        "prev_h",
        "a_prev",
        "concat",
        "z",
        "zt",
        "hx",
        "xh",
        "inp",
        "X",
        "Xt",
        "Z",
        "Zt",
    }
    for fn in [
        *facts.functions.values(),
        *(m for c in facts.classes.values() for m in c.methods.values()),
    ]:
        for left, right in fn.products:
            lw = left in slotset or (left and N.facts(left, _ANY) is not None and left[0] in "WUw")
            rw = right in slotset or (
                right and N.facts(right, _ANY) is not None and right[0] in "WUw"
            )
            if (left in data or (left and N.data_role(left))) and rw:
                row += 1
            elif lw and (right in data or (right and N.data_role(right))):
                column += 1
    if column > row:
        return ["column", "row"]
    return ["row", "column"]


_ANY = None  # filled lazily with the vanilla model (names.facts needs gate letters)


def _sequence_hints(facts: SourceFacts, per_example: bool) -> list[str]:
    """The data's axes, from `N, T, D = x.shape` and the like; the usual orders after."""
    found: list[str] = []
    for fn in [
        *facts.functions.values(),
        *(m for c in facts.classes.values() for m in c.methods.values()),
    ]:
        for owner, letters in fn.unpacks.items():
            if N.data_role(owner) not in ("x", "dh") or len(letters) not in (2, 3):
                continue
            axes = ""
            for name in letters:
                size = N.size_letter(name) or {"d": "D", "b": "N", "n": "N"}.get(name.lower())
                if name in ("T", "t", "T_x", "seq_len", "n"):
                    size = "T" if name != "n" or "T" not in axes else size
                if name in ("b", "m", "N", "batch", "batch_size", "n_ex"):
                    size = "N"
                axes += {"D": "F", "H": "F", "N": "N", "T": "T"}.get(size or "", "?")
            if "?" not in axes and len(set(axes)) == len(axes) and "T" in axes:
                if axes not in found:
                    found.append(axes)
    usual = ["TF", "FT"] if per_example else ["TNF", "NTF", "FNT", "NFT", "TFN"]
    return [a for a in found if ("N" in a) != per_example] + [a for a in usual if a not in found]


def _state_for(sequence: str) -> list[str]:
    if "N" not in sequence:
        return ["F", "F1", "1F"]
    if sequence.index("F") < sequence.index("N"):
        return ["FN", "NF"]
    return ["NF", "FN"]


def _families(model: ModelSpec, layer: bool, count: int, optional: int) -> list[tuple]:
    """(model variant, convention fields) whose parameters the code's `count` slots can be:
    every required part one slot, up to `optional` slots for the output layer's (a layer's
    code may take them and not use them). Fewest biases removed first."""
    out = []
    gates = bool(model.fused_gates)
    removable = [b for b in reversed(model.biases) if not layer or b in model.state_parameters]
    subsets = [()]
    for size in range(1, len(removable) + 1):
        subsets += list(itertools.combinations(removable, size))
    letters = [k for k, _ in model.stacking]
    stacks: list = [None]
    if "x" in letters and "h" in letters:
        stacks += ["hx", *(["1hx"] if "1" in letters else [])]
    if "2" in letters:
        stacks += ["12"]
    for no_bias in subsets:
        try:
            variant = model.variant(
                no_bias=tuple(sorted(set(model.options.no_bias) | set(no_bias)))
            )
        except Exception:
            continue
        for weights in ("fused", "per-gate") if gates else ("fused",):
            for stack in stacks:
                for split in (False, True):
                    try:
                        conv = Convention(weights=weights, stack=stack, split=split)
                        conv.validate_for(variant)
                    except Exception:
                        continue
                    required, extra = _param_parts(conv, variant, layer)
                    if len(required) <= count <= len(required) + min(optional, len(extra)):
                        fields = {"weights": weights, "stack": stack, "split": split}
                        out.append((variant, fields))
    return out


def _param_parts(conv: Convention, model: ModelSpec, layer: bool) -> tuple[list, list]:
    """The parameter parts the code must take, and (a layer's) the output layer's it may."""
    parts = [p for p in parts_of(conv, model) if _is_param(p, model)]
    if not layer or model.from_file:
        return parts, []
    state = set(model.state_parameters)
    required = [p for p in parts if _holds(p, conv, model) <= state]
    return required, [p for p in parts if p not in required]


def _is_param(part: str, model: ModelSpec) -> bool:
    head = part.split(".")[0]
    return head in ("W", "B") or head in model.parameters or head[:-3] in model.parameters


def _holds(part: str, conv: Convention, model: ModelSpec) -> set[str]:
    head = part.split(".")[0]
    if head in ("W", "B") and conv.stack:
        return {dict(model.stacking)[k] for k in conv.stack}
    if head.endswith(("_ih", "_hh")) and conv.split:
        return {head[:-3]}
    return {head}


def _assign(slots, required, optional, model: ModelSpec) -> dict[str, str] | None:
    """Part -> slot (the user's name), by what the names say, ties broken by position: every
    required part gets a slot, and an optional part (the output layer's, in a layer) only a
    slot whose name says so."""
    parts = list(required) + list(optional)
    scores = {}
    for i, slot in enumerate(slots):
        f = N.facts(slot, model)
        for j, part in enumerate(parts):
            score = _affinity(f, part, model) - 0.01 * abs(i - j)
            if j >= len(required) and not (f and "out" in f.sources):
                score -= 1000.0
            scores[(i, j)] = score
    chosen: dict[int, int] = {}
    for (i, j), score in sorted(scores.items(), key=lambda kv: -kv[1]):
        if score < -50 or i in chosen or j in chosen.values():
            continue
        chosen[i] = j
    if len(chosen) != len(slots) or not set(range(len(required))) <= set(chosen.values()):
        return None
    return {parts[j]: slots[i] for i, j in chosen.items()}


def _assignments(slots, required, optional, model: ModelSpec) -> list[dict[str, str]]:
    """Part -> slot maps to try, likeliest first: by what each name says, then, for one
    weight per gate and input written as two families of names (Wz, Wr, Wh and Uz, Ur, Uh),
    each family taken as the input's and as the state's."""
    out = []
    first = _assign(slots, required, optional, model)
    if first is not None:
        out.append(first)
    gates = dict(model.gate_names)
    heads = {p.split(".")[0] for p in required if "." in p}
    if {"W_x", "W_h"} <= heads and gates:
        families: dict[str, list[str]] = {}
        for slot in slots:
            facts = N.facts(slot, model)
            if facts is not None and facts.kind == "weight":
                families.setdefault(slot[0], []).append(slot)
        groups = list(families.values())
        if len(groups) == 2 and all(len(g) == len(gates) for g in groups):
            for x_group, h_group in (groups, groups[::-1]):
                mapping = dict(first or {})
                ok = True
                for head, group in (("W_x", x_group), ("W_h", h_group)):
                    for slot in group:
                        gate = _gate_of(slot[1:], gates)
                        if gate is None:
                            ok = False
                            break
                        mapping = {p: s for p, s in mapping.items() if s != slot}
                        mapping[f"{head}.{gate}"] = slot
                if ok and mapping not in out and set(required) <= set(mapping):
                    out.append(mapping)
    return out


def _gate_of(suffix: str, gates: dict) -> str | None:
    letters = suffix.strip("_").lower()
    found = [g for g, names in gates.items() if letters in names]
    return found[0] if len(found) == 1 else None


def _affinity(f, part: str, model: ModelSpec) -> float:
    head, _, gate = part.partition(".")
    is_bias = head.startswith(("b", "B")) or head in model.biases
    if head == "c" and "c" in model.biases:
        is_bias = True
    if f is None:
        return 0.0
    score = 0.0
    if (f.kind == "bias") != is_bias:
        return -100.0
    if gate:
        if f.gates:
            score += 10.0 if gate in f.gates else -10.0
    elif f.gates:
        score -= 5.0
    source = {
        "W_x": "x",
        "W_h": "h",
        "V": "out",
        "W": None,
        "b_x": "x",
        "b_h": "h",
        "b_ih": "x",
        "b_hh": "h",
    }.get(head)
    if head in ("c", "b_y"):
        source = "out"
    if f.sources and source:
        score += 3.0 if source in f.sources else -3.0
    elif f.sources and head == "W":
        score -= 1.0
    return score


# -- one probe --------------------------------------------------------------------------------


def _materialize(skeleton: Skeleton, names: Mapping[str, str]) -> Plan:
    """The skeleton's plan with every slot replaced by the part it holds."""
    part_of = {user: part for part, user in names.items()}

    def spec(s):
        if isinstance(s, tuple) and s and s[0] == "param":
            return ("array", part_of.get(s[1], s[1]))
        if isinstance(s, tuple) and s and s[0] == "dict":
            return ("dict", {k: spec(v) for k, v in s[1].items()})
        if isinstance(s, tuple) and s and s[0] == "list":
            return ("list", tuple(spec(v) for v in s[1]))
        return s

    def call(c: Call | None) -> Call | None:
        if c is None:
            return None
        return Call(
            c.fn,
            c.method,
            tuple(spec(a) for a in c.args),
            {k: spec(v) for k, v in c.kwargs.items()},
        )

    plan = skeleton.plan
    built = plan.object
    if built is not None:
        prepare = []
        for action in built.prepare:
            action = dict(action)
            if "value" in action:
                action["value"] = spec(action["value"])
            if "args" in action:
                action["args"] = tuple(spec(a) for a in action["args"])
            prepare.append(action)
        built = replace(built, args=tuple(spec(a) for a in built.args), prepare=tuple(prepare))
    return replace(plan, forward=call(plan.forward), backward=call(plan.backward), object=built)


def _grad_role(key: str, slots) -> str | None:
    """A returned gradient's name -> "slot:<name>", "x", "h0", "c0" or None."""
    import re

    if key is None:
        return None
    plain = {s.replace("_", ""): s for s in slots}
    for name in (N.gradient_key(key), key):
        if name in slots:
            return f"slot:{name}"
        if name.replace("_", "") in plain:  # dWir for W_ir
            return f"slot:{plain[name.replace('_', '')]}"
    role = N.data_role(key)  # a dict keyed by the data's own names: x, h0
    if role == "x" or key in ("x", "h0", "c0"):
        return "x" if role == "x" else key
    for prefix in ("grad_", "d_", "d"):
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            if re.fullmatch(r"(h|a|s|hidden)_?(next|prev|0|init|start)?", rest.lower()):
                return "h0"  # the carry that comes out of the first step: dh0
            if re.fullmatch(r"c_?(next|prev|0|init|start)?", rest.lower()):
                return "c0"
            role = N.data_role(rest)
            if role == "x":
                return "x"
            if role in ("h", "c"):
                return f"{role}0"
            if rest.lower() in ("inputs", "input", "xs", "xt", "x"):
                return "x"
    return None


def _arrays_in(structure) -> list:
    """The (path, shape) of every array in a returned structure, one level of containers."""
    out = []
    if isinstance(structure, dict) and "array" in structure:
        return [((), tuple(structure["array"]))]
    if isinstance(structure, dict):
        for kind in ("tuple", "list"):
            if kind in structure:
                for k, item in enumerate(structure[kind]):
                    if isinstance(item, dict) and "array" in item:
                        out.append(((("index", k),), tuple(item["array"])))
        if "dict" in structure:
            for key, item in structure["dict"]:
                if isinstance(item, dict) and "array" in item:
                    out.append(((("key", key),), tuple(item["array"])))
    return out


def _complete(
    skeleton: Skeleton,
    plan: Plan,
    seen: dict,
    names: Mapping[str, str],
    shapes: Mapping[str, tuple],
    form: str,
    order: tuple | None = None,
):
    """The plan's gradient selectors, from what the probe call returned: (plan with the
    selectors it is sure of, open positions: [(selector, [parts of that shape])]). A
    declared `order` names a returned tuple's entries (the loss's, if any, left out)."""
    slots = set(skeleton.slots)
    part_of = {user: part for part, user in names.items()}
    grads: dict[str, tuple] = {}
    open_positions: list = []
    returned = seen.get("backward") if plan.level != "full" else seen.get("forward")
    where = skeleton.param_grads or ("return",)
    loss = plan.loss
    container = plan.container or ()
    names_by_index = list(skeleton.returned_names)
    if plan.level == "full" and form == "full":
        kids = (
            (returned.get("tuple") or returned.get("list")) if isinstance(returned, dict) else None
        )
        if not kids:
            return None
        loss = (("index", 0),)
        if (
            len(kids) == 2
            and isinstance(kids[1], dict)
            and ("dict" in kids[1] or "tuple" in kids[1] or "list" in kids[1])
        ):
            container = (("index", 1),)
            returned = kids[1]
            names_by_index = []
        else:
            container = ()
    elif (
        plan.level == "step"
        and isinstance(returned, dict)
        and ("tuple" in returned or "list" in returned)
    ):  # (dx, dprev_h[, dprev_c], then the weights' gradients or a dict of them)
        kids = returned.get("tuple") or returned.get("list")
        taken = 1 + len(plan.states)
        if len(kids) == taken + 1 and isinstance(kids[-1], dict) and "dict" in kids[-1]:
            container = (("index", taken),)
            returned = kids[-1]
            names_by_index = []
        else:
            returned = {"tuple": [None] * taken + list(kids[taken:])}
    entries = _arrays_in(returned) if returned is not None else []
    data_parts = {"x", "h0", "c0"}
    unplaced: list = []
    tuple_entries = [(path, shape) for path, shape in entries if path and path[-1][0] == "index"]
    if order is not None and tuple_entries and (where[0] == "return" or plan.level == "full"):
        offset = 1 if plan.level == "full" and form == "full" and not container else 0
        if plan.level == "step":
            offset = 1 + len(plan.states)
        for path, _ in tuple_entries:
            k = path[-1][1] - offset
            if 0 <= k < len(order) and order[k] in shapes:
                grads[order[k]] = ("return", *container, *path)
        entries = [e for e in entries if e not in tuple_entries]
    if where[0] == "return" or plan.level == "full":
        for path, shape in entries:
            key = path[-1][1] if path else None
            role = None
            if path and path[-1][0] == "key":
                role = _grad_role(str(key), slots)
            elif path and path[-1][0] == "index" and key < len(names_by_index):
                role = _grad_role(names_by_index[key], slots)
            part = part_of.get(role[5:]) if role and role.startswith("slot:") else role
            if plan.level == "step" and part in data_parts:
                continue  # the step's dx and carries are the chain's, not these
            selector = ("return", *container, *path)
            if part is not None and part in shapes and part not in grads:
                grads[part] = selector
                continue
            fits = [
                p
                for p, s in shapes.items()
                if s == shape and p not in grads and not (plan.level == "step" and p in data_parts)
            ]
            if len(fits) == 1:
                grads[fits[0]] = selector
            elif fits:
                open_positions.append((selector, fits))
            elif part is not None and part in shapes and part in grads:
                pass
            else:  # returned, and nowhere to go: no candidate that leaves it out is a fit
                unplaced.append(selector)
    if where[0] == "object":
        after = seen.get("after") or seen.get("built") or {}
        bound = {
            a["bind"][0][1] for a in (plan.object.prepare if plan.object else ()) if "bind" in a
        }  # where the parameters went in: not their gradients
        ctor = [a[1] for a in (plan.object.args if plan.object else ()) if a[0] == "array"]
        if where[1] == "list" and ctor:
            for k, part in enumerate(ctor):
                grads[part] = ("object", ("attr", where[2]), ("index", k))
        for attr, item in after.items():
            if attr in bound or not isinstance(item, dict):
                continue
            if "dict" in item:
                for key, value in item["dict"]:
                    role = _grad_role(key, slots)
                    part = part_of.get(role[5:]) if role and role.startswith("slot:") else None
                    if part and part not in grads and isinstance(value, dict) and "array" in value:
                        grads[part] = ("object", ("attr", attr), ("key", key))
            elif "array" in item and attr.startswith(("d", "grad")):
                role = _grad_role(attr, slots)
                part = part_of.get(role[5:]) if role and role.startswith("slot:") else None
                if part and part not in grads:
                    grads[part] = ("object", ("attr", attr))
        for role, selector in skeleton.data_grads.items():
            if selector[0] == "object" and selector[1][1] not in after:
                continue  # the code keeps no such gradient (a TimeLSTM without dc)
            grads.setdefault(role, selector)
        if plan.level == "sequence" and "x" not in grads:
            grads["x"] = ("return",)
    if plan.level == "step":
        if "x" in plan.back:
            grads["x"] = ("return",)  # the chain's: stacked dx_t
        for name in plan.initials:
            if plan.carry == "driver" and name in shapes:
                grads[name] = ("return",)
    if unplaced:  # judged as wrong: a returned array the convention has no place for
        grads["!unplaced"] = unplaced[0]
    completed = replace(
        plan,
        grads=grads,
        loss=loss if form == "full" else plan.loss,
        container=container if plan.level == "full" else plan.container,
    )
    return completed, open_positions


# -- the search -------------------------------------------------------------------------------


class _Trial:
    """Calls the user's code through a runner on the probe problem and fresh ones."""

    #: Calls in a row that hung or killed the worker, after which the search gives up: code
    #: that hangs whichever way it is called is not hanging because of a convention.
    MAX_STALLS = 3

    def __init__(self, runner, deadline: float) -> None:
        self.runner, self.deadline = runner, deadline
        self.calls = 0
        self.stalls = 0

    def answer(self, calling: Calling, arrays, timeout: float = 5.0) -> UserAnswer:
        self.calls += 1
        try:
            answer = calling.call(self.runner, arrays, timeout=min(timeout, self.remaining()))
        except (UserFunctionError, WorkerDiedError) as exc:
            self._stalled(isinstance(exc, WorkerDiedError) or "did not return" in str(exc))
            raise
        self._stalled(False)
        return answer

    def _stalled(self, stalled: bool) -> None:
        self.stalls = self.stalls + 1 if stalled else 0
        if self.stalls >= self.MAX_STALLS:
            self.deadline = min(self.deadline, time.monotonic())

    def probe(self, calling: Calling, arrays) -> dict:
        """The structure of what the code returned (and the object's arrays)."""
        dims = calling.model.dims_of({k: v for k, v in arrays.items() if k != "dh"})
        user = calling.user_arrays(dims, arrays)
        arrangement = calling.arrangement(dims)
        per_example = (
            [p for p in arrangement.data_parts if p in user] if calling.arrays.per_example else []
        )
        plan = calling.effective_plan.to_wire(per_example, [])
        plan["grads"] = {}
        kwargs = {"plan": plan, "arrays": user, "sizes": dict(dims.sizes), "probe": True}
        self.calls += 1
        outcome = self.runner.submit([], kwargs, min(5.0, self.remaining())).outcome()
        value = getattr(outcome, "value", None)
        if value is None or not isinstance(value, dict):
            self._stalled(type(outcome).__name__ == "Died")
            raise _Failed(_failure_text(outcome))
        self._stalled(False)
        return value.get("seen", {})

    def remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())


class _Failed(Exception):
    pass


def _failure_text(outcome) -> str:
    message = getattr(outcome, "message", None) or getattr(outcome, "reason", None)
    kind = getattr(outcome, "type", "")
    return f"{kind}: {message}" if kind else str(message)


def _problem(model: ModelSpec, form: str, dims: Dims, seed: int) -> dict:
    arrays = model.random_point(model.complete(dims), seed)
    if form == "layer" and not model.from_file:
        rng = np.random.default_rng(seed + 7)
        arrays["dh"] = rng.standard_normal((dims.T, dims.N, dims.H))
    return arrays


def _truth(model: ModelSpec, form: str, arrays) -> dict:
    loss, grads = model.truth({k: v for k, v in arrays.items()}, form)
    out = dict(grads)
    if loss is not None:
        out["loss"] = loss
    return out


#: The tolerance of an answer of a dtype: (rtol, floor); set by the checker (`search`).
_TOLERANCE = {"float64": (1e-6, 1e-6)}


def _tolerance(answer: UserAnswer, part: str) -> tuple[float, float]:
    dtype = answer.dtypes.get(part, "float64")
    return _TOLERANCE.get(dtype, _TOLERANCE.get("float64", (1e-6, 1e-6)))


def _score(calling: Calling, arrays, answer: UserAnswer, truth: dict, form: str) -> tuple:
    """How many of the returned arrays (and the loss) equal the truth laid out by calling,
    at the checker's tolerance for their dtype, how many were judged, and how far off the
    rest are (the mean share of wrong entries, 0 .. 1: a tie-breaker)."""
    dims = calling.model.dims_of({k: v for k, v in arrays.items() if k != "dh"})
    laid = calling.arrangement(dims).to_user(truth, list(answer.grads), gradients=True)
    right = judged = 0
    distance = 0.0
    scale = max(float(np.abs(v).max(initial=0.0)) for k, v in truth.items() if k != "loss")
    for part, got in answer.grads.items():
        if part not in laid:
            continue
        judged += 1
        want = laid[part]
        if np.shape(got) != np.shape(want) or part in answer.shape_notes:
            distance += 1.0  # a shape of its own is no fit, whatever its values
            continue
        rtol, floor = _tolerance(answer, part)
        size = max(float(np.abs(want).max(initial=0.0)), floor * scale, 1e-300)
        errors = np.abs(got - want) / size
        if float(errors.max(initial=0.0)) <= rtol:
            right += 1
        # the share of its entries that are off: a bug in two of four gate blocks leaves the
        # other half right under the code's own convention, and no other is as close
        distance += float(np.mean(errors > rtol)) if errors.size else 0.0
    for part in answer.problems:  # returned, but not as an array of its shape: wrong
        if part != "loss":
            judged += 1
            distance += 1.0
    if form == "full" and answer.loss is not None and "loss" in truth:
        judged += 1
        rtol, _ = _tolerance(answer, "loss")
        if abs(answer.loss - truth["loss"]) <= rtol * max(abs(truth["loss"]), 1e-300):
            right += 1
    return right, judged, distance / max(judged, 1)


def _variants(conv: Convention, model: ModelSpec, names: Mapping[str, str]) -> list[Convention]:
    """Conventions with the same arrays (names and shapes) as conv, re-arranged otherwise:
    every gate order of fused arrays, which same-shaped gate slot holds which gate, the
    stacked rows' order, the GRU's update."""
    gates = model.fused_gates
    orders = [None]
    if gates and conv.weights == "fused":
        orders = ["".join(p) for p in itertools.permutations(gates)]
    stacks = [conv.stack]
    if conv.stack:
        stacks = ["".join(p) for p in itertools.permutations(conv.stack)]
    updates = ["prev", "new"] if model.complement_gate else ["prev"]
    renamings = [dict(names)]
    if gates and conv.weights == "per-gate":
        renamings = _gate_renamings(names, gates)
    out = []
    for order, stack, update, mapping in itertools.product(orders, stacks, updates, renamings):
        try:
            out.append(replace(conv, gates=order, stack=stack, update=update, names=mapping))
        except Exception:
            continue
        if len(out) >= MAX_VARIANTS:
            break
    return out


def _models(model: ModelSpec) -> list[ModelSpec]:
    """The model's variants that take the same arrays: its own choices that change no shape
    (the GRU's reset placement), the given one first."""
    out = [model]
    for option in model.choices:
        values = MODEL_OPTIONS.get(option, ())
        if option in ("reset",):
            for value in values:
                if value != getattr(model.options, option):
                    out.append(model.variant(**{option: value}))
    return out


def _gate_renamings(names: Mapping[str, str], gates: str) -> list[dict]:
    """The names with the gates of same-shaped per-gate slots permuted (first: as given)."""
    groups: dict[str, list[str]] = {}
    for part in names:
        head, _, gate = part.partition(".")
        if gate:
            groups.setdefault(head, []).append(part)
    out = [dict(names)]
    for perm in itertools.permutations(gates):
        if "".join(perm) == gates:
            continue
        mapping = dict(names)
        for head, parts in groups.items():
            for part in parts:
                gate = part.partition(".")[2]
                mapping[f"{head}.{perm[gates.index(gate)]}"] = names[part]
        out.append(mapping)
    return out


def search(
    runner,
    labels: list[str],
    files: list[Path],
    model: ModelSpec,
    form: str | None,
    *,
    deadline: float,
    seed: int = 0,
    targets: int = 1,
    tolerances: Mapping[str, tuple[float, float]] | None = None,
) -> Found:
    """Look for a convention under which the code is right (see the module's docstring).

    `labels`: the names the runner loaded (the target's first `targets`, then the classes
    of named methods); `files`: their sources, read for facts; `tolerances`: dtype ->
    (rtol, floor), the checker's (a value is right only as the verdict would judge it)."""
    global _ANY
    if tolerances:
        _TOLERANCE.clear()
        _TOLERANCE.update(tolerances)
    if _ANY is None:
        from ..models import VANILLA

        _ANY = VANILLA
    facts = _facts(files)
    objects = list(getattr(runner, "objects", []))
    trial = _Trial(runner, deadline)
    candidates: list[Candidate] = []
    errors: list[str] = []
    shapes = skeletons(labels, objects, facts, model, targets)
    built = [s.object_only for s in shapes if s.object_only is not None]
    if built:  # a class whose parameters only an instance shows
        inventory, warm = _inventory(trial, built[0], model, seed)
        shapes = skeletons(labels, objects, facts, model, targets, inventory, warm)
    for skeleton in shapes:
        if skeleton.object_only is not None:
            continue
        try:
            variant_model = model.variant(**skeleton.variant) if skeleton.variant else model
        except Exception:
            variant_model = model
        the_form = form or skeleton.form
        found = _search_skeleton(
            trial, skeleton, variant_model, the_form, facts, seed, errors, candidates
        )
        if found is not None:
            return Found(found, _confirm(trial, found, seed), len(candidates), errors)
        if time.monotonic() > deadline:
            break
    best = None
    for c in candidates:
        # most arrays right; then the reading that places the most of what the code returns;
        # then the fewest wrong entries
        if best is None or (c.right, c.judged, -c.distance) > (
            best.right,
            best.judged,
            -best.distance,
        ):
            best = c
    return Found(best, False, len(candidates), errors)


def _inventory(trial, built, model: ModelSpec, seed: int) -> tuple[dict, bool]:
    """The arrays an instance holds once built; when it holds none (numpy-ml creates its
    parameters in the first forward), after a warm-up call of its forward on one step."""
    calling = Calling(
        form="layer", model=model, plan=Plan(level="build", forward=Call(), object=built)
    )
    arrays = _problem(model, "layer", PROBE_DIMS, seed + 101)
    try:
        seen = trial.probe(calling, arrays)
    except _Failed:
        return {}, False
    first = seen.get("built") or {}
    if any(isinstance(v, dict) and ("array" in v or "dict" in v) for v in first.values()):
        from .infer import _inventory_slots

        if _inventory_slots(first, model)[1]:
            return first, False
    for method in ("forward", "__call__"):
        warm = Plan(
            level="build", forward=Call(method=method, args=(("data", "x_0"),)), object=built
        )
        try:
            seen = trial.probe(replace(calling, plan=warm), arrays)
        except _Failed:
            continue
        return seen.get("warm") or {}, True
    return first, False


def _search_skeleton(trial, skeleton, model, form, facts, seed, errors, candidates):
    layer = form == "layer"
    optional = sum(
        1
        for s in skeleton.slots
        if (N.facts(s, model) or N.Facts("", frozenset(), frozenset())).sources
        == frozenset({"out"})
    )
    families = _families(model, layer and not model.from_file, len(skeleton.slots), optional)
    if not skeleton.slots:
        families = [(model, {"weights": "fused", "stack": None, "split": False})]
    for (variant, family), layout, per_example in itertools.product(
        families, _layout_hints(facts, skeleton.slots), (False, True)
    ):
        for sequence in _sequence_hints(facts, per_example):
            for state in _state_for(sequence)[:2]:
                for bias in ("F", "1F", "F1") if layout == "row" else ("F1", "F", "1F"):
                    if time.monotonic() > trial.deadline:
                        return None
                    try:
                        conv = Convention(
                            layout=layout, sequence=sequence, state=state, bias=bias, **family
                        )
                        conv.validate_for(variant)
                    except Exception:
                        continue
                    required, extra = _param_parts(conv, variant, layer)
                    for names in _assignments(list(skeleton.slots), required, extra, variant):
                        named = replace(conv, names=names)
                        candidate, error = _try(
                            trial, skeleton, named, variant, form, seed, required
                        )
                        if error is not None:
                            errors.append(error)
                            continue
                        if candidate is None:
                            continue
                        candidates.append(candidate)
                        if candidate.perfect:
                            return candidate
    return None


def _planned(trial, skeleton, conv, model, form, seed, order=None):
    """The calling of one skeleton under one convention, its gradients' selectors found from
    a probe call: (calling, open positions: same-shaped unnamed arrays) or (None, why)."""
    plan = _materialize(skeleton, conv.names)
    if plan.level == "step":  # the steps are cut along the T axis of the data as sent
        axes = [a for a in conv.sequence if a != "N"] if conv.per_example else list(conv.sequence)
        plan = replace(plan, time_axis={"x": axes.index("T"), "dh": axes.index("T")})
    try:
        calling = Calling(form=form, model=model, arrays=conv, plan=plan)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    arrays = _problem(model, form, PROBE_DIMS, seed + 101)
    try:
        seen = trial.probe(calling, arrays)
    except _Failed as exc:
        return None, str(exc)
    dims = model.complete(PROBE_DIMS)
    arrangement = calling.arrangement(dims)
    # The shapes one call of the code sees (one example's, when it takes one at a time).
    shapes = {p: arrangement.arrays[p].shape for p in calling.gradients}
    done = _complete(skeleton, plan, seen, conv.names, shapes, form, order)
    if done is None:
        return None, "could not find the gradients in what it returned"
    plan, open_positions = done
    unplaced = plan.grads.get("!unplaced")
    if unplaced is not None:
        plan = plan.with_grads({p: s for p, s in plan.grads.items() if p != "!unplaced"})
    if not plan.grads and not open_positions:
        return None, "returned no gradient symbptt could place"
    planned = replace(calling, plan=plan)
    planned.__dict__["unplaced"] = unplaced  # a returned array with no place: never a fit
    return planned, open_positions


def _try(trial, skeleton, conv, model, form, seed, required):
    """Probe one convention class, then judge every re-arrangement of it by values."""
    planned, open_positions = _planned(trial, skeleton, conv, model, form, seed)
    if planned is None:
        return None, open_positions
    plan = planned.plan
    for selector, _ in open_positions:  # asked for, placed by values below
        plan = plan.with_grads({**plan.grads, f"?{len(plan.grads)}": selector})
    calling = replace(planned, plan=plan)
    dims = model.complete(PROBE_DIMS)
    arrays = _problem(model, form, PROBE_DIMS, seed + 101)
    try:
        answer = trial.answer(calling, arrays)
    except (UserFunctionError, WorkerDiedError) as exc:
        return None, str(exc)
    sent = calling.user_arrays(dims, arrays)
    best = None
    for variant, reading in itertools.product(_variants(conv, model, conv.names), _models(model)):
        try:
            other = replace(calling, arrays=variant, model=reading)
            laid = other.arrangement(dims)
            point = laid.to_model(
                {
                    p: v
                    for p, v in sent.items()
                    if p in laid.arrays and laid.arrays[p].role == "parameter"
                }
            )
            seen_arrays = {**arrays, **point}
            truth = _truth(reading, form, seen_arrays)
        except Exception:
            continue
        placed = _place(other, answer, open_positions, truth, seen_arrays, dims)
        right, judged, distance = _score(other, seen_arrays, placed, truth, form)
        complete = all(p in placed.grads for p in required)
        if not complete or planned.__dict__.get("unplaced") is not None:
            judged = max(judged, right + 1)  # never perfect while an array is left out
        if best is None or (right, judged, -distance) > (best.right, best.judged, -best.distance):
            best = Candidate(_fixed(other, placed, answer), skeleton, right, judged, None, distance)
        if best.perfect:
            break
    return best, None


class Unresolved(Exception):
    """The declared convention does not say how to call the code: why, in one sentence."""


def resolve(
    runner,
    labels: list[str],
    files: list[Path],
    model: ModelSpec,
    form: str,
    convention: Convention,
    *,
    order: tuple | None = None,
    step: bool | None = None,
    deadline: float,
    seed: int = 0,
    targets: int = 1,
) -> Calling:
    """The calling of code that is not one of the usual shapes (a class, a method, code
    whose arguments have their own names), under a declared convention: its way to call
    found from its names and source and one probe call, never from values. Unresolved when
    no way fits: the search (`search`) then looks further."""
    facts = _facts(files)
    objects = list(getattr(runner, "objects", []))
    trial = _Trial(runner, deadline)
    shapes = skeletons(labels, objects, facts, model, targets)
    built = [s.object_only for s in shapes if s.object_only is not None]
    if built:
        inventory, warm = _inventory(trial, built[0], model, seed)
        shapes = skeletons(labels, objects, facts, model, targets, inventory, warm)
    reasons = []
    for skeleton in shapes:
        if skeleton.object_only is not None:
            continue
        if step is not None and (skeleton.plan.level == "step") != step:
            continue
        if any(
            model.names.count(n) != (v == "input")
            for n, v in skeleton.variant.items()
            if n in ("h0", "c0")
        ):
            continue  # the code takes an initial state the declared variant lacks, or not
        layer = form == "layer"
        required, extra = _param_parts(convention, model, layer)
        names = dict(convention.names)
        free = [s for s in skeleton.slots if s not in names.values()]
        open_parts = [p for p in required if p not in names]
        open_extra = [p for p in extra if p not in names]
        if free:
            more = _assign(free, open_parts, open_extra, model)
            if more is None:
                reasons.append(f"{skeleton.how}: cannot tell which array {', '.join(free)} is")
                continue
            names.update(more)
        elif open_parts:
            reasons.append(f"{skeleton.how}: takes no array for {', '.join(open_parts)}")
            continue
        conv = replace(convention, names=names)
        planned, open_positions = _planned(trial, skeleton, conv, model, form, seed, order)
        if planned is None:
            reasons.append(f"{skeleton.how}: {open_positions}")
            continue
        if open_positions:
            reasons.append(
                f"{skeleton.how}: returns arrays of the same shape without names; declare their "
                "order (--order)"
            )
            continue
        if planned.__dict__.get("unplaced") is not None:
            where = _path_text(planned.__dict__["unplaced"])
            reasons.append(
                f"{skeleton.how}: returns an array ({where}) that is none of the model's "
                "arrays under this convention; declare their order (--order)"
            )
            continue
        return replace(planned, order=order) if order else planned
    raise Unresolved("; ".join(dict.fromkeys(reasons)) or "no way to call it was found")


def _path_text(selector) -> str:
    out = "what it returned"
    for step in selector[1:]:
        if step[0] == "index":
            out += f"[{step[1]}]"
        elif step[0] == "key":
            out += f"[{step[1]!r}]"
        elif step[0] == "attr":
            out += f".{step[1]}"
    return out


def _facts(files) -> SourceFacts:
    facts = SourceFacts()
    for path in files:
        try:
            more = read_facts(path)
        except (OSError, ValueError):
            continue
        facts.functions.update(more.functions)
        facts.classes.update(more.classes)
    return facts


def _place(calling: Calling, answer: UserAnswer, open_positions, truth, arrays, dims):
    """The answer with its unplaced arrays (same-shaped, unnamed) given to the parts whose
    truth they equal (each part once)."""
    if not open_positions:
        return answer
    grads = {p: v for p, v in answer.grads.items() if not p.startswith("?")}
    laid = calling.arrangement(dims).to_user(truth, gradients=True)
    keys = [k for k in answer.grads if k.startswith("?")]
    left = []
    for key, (selector, parts) in zip(keys, open_positions):
        value = answer.grads[key]
        for part in parts:
            if part in grads or part not in laid:
                continue
            want = laid[part]
            if np.shape(value) == np.shape(want) and np.allclose(value, want, rtol=1e-6, atol=1e-9):
                grads[part] = value
                answer.__dict__.setdefault("placed", {})[part] = selector
                break
        else:
            left.append((key, selector, parts))
    # What no value places (wrong code) goes in the order the code takes the parameters:
    # gradients are returned as the arrays were passed.
    slots = list(calling.arrays.names.values())
    for key, selector, parts in left:
        free = [p for p in parts if p not in grads and p in laid]
        free.sort(
            key=lambda p: (
                slots.index(calling.arrays.names[p]) if p in calling.arrays.names else len(slots)
            )
        )
        if free:
            grads[free[0]] = answer.grads[key]
            answer.__dict__.setdefault("placed", {})[free[0]] = selector
    placed = UserAnswer(answer.loss, grads, answer.problems, answer.dtypes)
    placed.__dict__["placed"] = answer.__dict__.get("placed", {})
    return placed


def _fixed(calling: Calling, placed: UserAnswer, answer: UserAnswer) -> Calling:
    """The calling whose plan reads the placed arrays where they were found; when values
    placed some, its `order` says where every returned array goes (so that the command
    that declares it finds them again without values)."""
    grads = {p: s for p, s in calling.plan.grads.items() if not p.startswith("?")}
    by_value = getattr(placed, "placed", {}) or placed.__dict__.get("placed", {})
    grads.update(by_value)
    answer.__dict__.pop("placed", None)
    fixed = replace(calling, plan=calling.plan.with_grads(grads))
    if by_value:
        order = _order_of(fixed)
        if order:
            try:
                fixed = replace(fixed, order=order)
            except Exception:
                pass
    return fixed


def _order_of(calling: Calling) -> tuple | None:
    """The parts in the order of the returned tuple their selectors point into."""
    plan = calling.plan
    offset = 0
    if plan.level == "full" and calling.form == "full" and not plan.container:
        offset = 1
    if plan.level == "step":
        offset = 1 + len(plan.states)
    at = {}
    for part, selector in plan.grads.items():
        if (
            selector
            and selector[0] == "return"
            and selector[-1][0] == "index"
            and len(selector) == 2 + len(plan.container or ())
        ):
            at[selector[-1][1] - offset] = part
    if not at or min(at) < 0 or sorted(at) != list(range(len(at))):
        return None
    return tuple(at[k] for k in sorted(at))


def _confirm(trial, candidate: Candidate, seed: int) -> bool:
    """Right on three fresh problems, called as the candidate says."""
    calling = candidate.calling
    form = calling.form
    for k in range(3):
        dims = replace(PROBE_DIMS, N=2 + k % 2, T=3 + k)
        arrays = _problem(calling.model, form, dims, seed + 200 + k)
        try:
            answer = trial.answer(calling, arrays)
        except (UserFunctionError, WorkerDiedError):
            return False
        right, judged, _ = _score(
            calling, arrays, answer, _truth(calling.model, form, arrays), form
        )
        if judged == 0 or right != judged:
            return False
    return True
