"""Plans for code never seen before, from what its names, signatures and source say.

Given the objects a target names (a function, a pair, a class, a method) with their
signatures (`worker.describe`) and the facts of their source (`source.py`), `skeletons`
proposes how to call them on one problem: at which level, which argument gets what, how an
instance is built and its parameters put in, where the gradients come back. A skeleton's
parameters are *slots*, the user's own names (`Wx`, `parameters["Wf"]`, `self.Wrx`); which
part of the model each slot holds is the convention's `names`, which the search finds
(`search.py`), and so is where each returned array goes when the code names nothing.

Everything here is a proposal: the search calls the code and the values decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..models.spec import ModelSpec
from . import names as N
from .plan import Built, Call, Plan
from .source import FunctionFacts, SourceFacts

__all__ = ["Skeleton", "skeletons", "FORWARD_METHODS", "BACKWARD_METHODS", "LOSS_METHODS"]

FORWARD_METHODS = ("forward", "__call__", "fprop", "forward_pass", "forward_step", "step", "call")
BACKWARD_METHODS = ("backward", "bprop", "backward_pass", "backprop", "backward_step", "grad")
LOSS_METHODS = ("loss", "loss_and_grads", "compute_loss", "lossFun", "loss_fun", "train_step")
#: Methods that set an object's weights (CMU's init_weights).
SETTERS = ("init_weights", "set_weights", "set_params", "load_weights", "set_parameters")
#: Methods that make an object's lazily created parameters exist (numpy-ml's _init_params).
INITS = (
    "_init_params",
    "init_params",
    "initialize",
    "initialize_parameters",
    "_initialize",
    "build",
    "reset_parameters",
)
#: Methods that forget a previous sequence and zero the gradients.
RESETS = (
    "flush_gradients",
    "reset",
    "reset_state",
    "zero_grad",
    "zero_grads",
    "clear",
    "flush",
    "reset_gradients",
)


@dataclass
class Skeleton:
    """A way to call the target: a plan whose parameter arguments are slots (("param",
    user name)), and what is still open: which slot is which part, and where returned
    arrays go (found from the first call's answer)."""

    plan: Plan
    form: str
    #: The user's names of the parameters the calls pass or bind, in the code's order.
    slots: tuple[str, ...]
    #: Model options the code's shape implies (h0 fixed at zero when nothing passes it...).
    variant: dict = field(default_factory=dict)
    #: Where the data gradients come back: "x", "h0", "c0" -> selector.
    data_grads: dict = field(default_factory=dict)
    #: Where the parameters' gradients are to be looked for: ("return", path) for a returned
    #: container, ("object", ...) for an instance's attributes; None: found after a call.
    param_grads: tuple | None = None
    #: For the returned tuple of a full-level call: where the loss is.
    how: str = ""
    #: The names the code's returned tuple gives its entries (from the source), if known.
    returned_names: tuple = ()
    #: A class whose parameters are not known yet: build this to see them (search.py).
    object_only: Built | None = None

    def describe(self) -> str:
        return self.how


def _role(name: str, model: ModelSpec) -> str | None:
    """The data role of an argument's name, for this model: c (and dc) only for a model
    with a cell state (a vanilla RNN's c is its output bias)."""
    role = N.data_role(name)
    if role in ("c", "dc") and "c" not in model.states:
        return None
    return role


def _slot_facts(name: str, model: ModelSpec) -> bool:
    """Whether the name reads as a weight or bias (or is one of the model's own names)."""
    if name in {i.name for i in model.base_inputs if i.role == "parameter"}:
        return True
    return N.facts(name, model) is not None


def _size(name: str, model: ModelSpec) -> str | None:
    """The size an argument's name gives (input_size, hidden_dim, H), never a one-letter
    lower-case name, which code uses for arrays (c, b)."""
    if len(name) == 1 and name.islower():
        return None
    if _slot_facts(name, model):
        return None
    return N.size_letter(name)


def _args_for(
    params: list[str],
    optional: set[str],
    model: ModelSpec,
    facts: FunctionFacts | None,
    step: bool,
    dict_keys: dict[str, list[str]],
) -> tuple[list, dict, list[str], dict]:
    """Argument specs for a forward-like call from its parameter names: the data by role,
    sizes, dicts of slots, and slots for the weights. Returns (args, kwargs, slots, roles)."""
    args: list = []
    slots: list[str] = []
    roles: dict[str, str] = {}
    for p in params:
        role = _role(p, model)
        if role == "x" or (role is None and p in ("X", "Xt")):
            args.append(("data", "x_t") if step else ("array", "x"))
            roles["x"] = p
        elif role == "y":
            args.append(("array", "y"))
            roles["y"] = p
        elif role in ("h", "c"):
            args.append(("data", role) if step else ("array", f"{role}0"))
            roles[role] = p
        elif p in dict_keys:
            spec = {k: ("param", k) for k in dict_keys[p]}
            args.append(("dict", spec))
            slots += list(dict_keys[p])
            roles.setdefault("dict", p)
        elif _size(p, model):
            args.append(("size", _size(p, model)))
        elif _slot_facts(p, model):
            args.append(("param", p))
            slots.append(p)
        elif p in optional:
            break  # a keyword with a default: left to it (and everything after it)
        else:
            args.append(("param", p))
            slots.append(p)
    return args, {}, slots, roles


def _dict_keys(fn: FunctionFacts | None, facts: SourceFacts) -> dict[str, list[str]]:
    """For each dict-like parameter, every key any function of the file reads from a dict
    parameter of that name (a notebook's lstm_forward passes `parameters` on to the cell)."""
    if fn is None:
        return {}
    out: dict[str, list[str]] = {}
    for p in fn.params:
        if not N.is_dict_name(p) and p not in fn.keys:
            continue
        keys: list[str] = list(fn.keys.get(p, []))
        for other in [
            *facts.functions.values(),
            *(m for c in facts.classes.values() for m in c.methods.values()),
        ]:
            for q, ks in other.keys.items():
                if q == p or (N.is_dict_name(q) and N.is_dict_name(p)):
                    keys += [k for k in ks if k not in keys]
        if keys:
            out[p] = keys
    return out


def _variant(roles: dict, model: ModelSpec, step: bool) -> dict:
    """Model options the arguments imply: no h argument -> h0 fixed at zero; a c argument
    -> c0 an input."""
    out = {}
    if "h0" in model.variant().names and "h" not in roles and not step:
        out["h0"] = "zero"
    if "c0" in [i.name for i in model.base_inputs] and "c" in roles and not step:
        out["c0"] = "input"
    return out


def _function_skeletons(name, obj, facts: SourceFacts, model: ModelSpec) -> list[Skeleton]:
    signature = [p for p in (obj.get("signature") or [])]
    fn = facts.function(name)
    params = [p[0] for p in signature if p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    if not params and fn is not None:
        params = list(fn.params)
    optional = {p[0] for p in signature if p[2]} | (fn.optional if fn else set())
    keys = _dict_keys(fn, facts)
    args, _, slots, roles = _args_for(params, optional, model, fn, False, keys)
    upstream = [p for p in params if _role(p, model) == "dh"]
    out = []
    if upstream or "y" not in roles:  # a layer: fn(x, h0, ..., dh) -> grads
        layer_args = [
            ("array", "dh") if _role(p, model) == "dh" else a
            for p, a in zip(params, args + [None] * len(params))
            if a is not None or _role(p, model) == "dh"
        ]
        plan = Plan(level="full", forward=Call(args=tuple(layer_args)), container=())
        out.append(
            Skeleton(
                plan,
                "layer",
                tuple(slots),
                _variant(roles, model, False),
                param_grads=("return",),
                how=f"{name}(...) -> grads",
                returned_names=_returned(fn),
            )
        )
    if "y" in roles:
        plan = Plan(level="full", forward=Call(args=tuple(args)), loss=(("index", 0),))
        out.append(
            Skeleton(
                plan,
                "full",
                tuple(slots),
                _variant(roles, model, False),
                param_grads=("return",),
                how=f"{name}(...) -> (loss, grads)",
                returned_names=_returned(fn),
            )
        )
    return out


def _returned(fn: FunctionFacts | None) -> tuple:
    if fn is None:
        return ()
    for kind, names in fn.returns:
        if kind == "tuple":
            return tuple(names)
    return ()


def _is_step(names: list[str], params: list[str]) -> bool:
    import re

    words = set()
    for n in names:
        words |= set(re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", n.lower()))
    if words & {"step", "cell"}:
        return True
    return any(N.data_role(p) in ("h", "c") for p in params) and any(
        p.lower() in ("xt", "x_t", "x_step") for p in params
    )


def _pair_skeletons(names, objects, facts: SourceFacts, model: ModelSpec) -> list[Skeleton]:
    (fname, fobj), (bname, bobj) = zip(names, objects)
    ffacts, bfacts = facts.function(fname), facts.function(bname)
    fparams = [p[0] for p in fobj.get("signature") or [] if p[1] != "VAR_KEYWORD"]
    bsig = bobj.get("signature") or []
    bparams = [p[0] for p in bsig if p[1] not in ("VAR_KEYWORD", "VAR_POSITIONAL")]
    boptional = {p[0] for p in bsig if p[2]}
    keys = _dict_keys(ffacts, facts)
    out = []
    steps = [_is_step([fname, bname], fparams)]
    if not steps[0]:
        steps.append(True)
    for step in steps:
        fargs, _, slots, roles = _args_for(fparams, set(), model, ffacts, step, keys)
        # Optional state arguments (Karpathy's c0=None, h0=None) are passed: they are inputs.
        fargs = [a for p, a in zip(fparams, fargs)]
        bargs: list = []
        for p in bparams:
            role = _role(p, model)
            if role == "dh":
                bargs.append(("data", "dnext_h") if step else ("array", "dh"))
            elif role == "dc" and step:
                bargs.append(("data", "dnext_c"))
            elif role == "cache" or (
                role is None
                and not N.facts(p, model)
                and not bargs[1:]
                and p not in boptional
                and bargs
            ):
                bargs.append(("data", "cache"))
            elif p in boptional:
                break
            elif N.facts(p, model) is not None:
                bargs.append(("param", p))
            else:
                bargs.append(("data", "cache"))
        forward = Call(fn=0, args=tuple(fargs))
        backward = Call(fn=1, args=tuple(bargs))
        cache = _cache_index(ffacts)
        if step:
            states = ("h", "c") if "c" in roles else ("h",)
            plan = Plan(
                level="step",
                forward=forward,
                backward=backward,
                cache=cache,
                next={s: (("index", k),) for k, s in enumerate(states)},
                back={
                    "x": (("index", 0),),
                    **{s: (("index", 1 + k),) for k, s in enumerate(states)},
                },
                states=states,
                initials=tuple(f"{s}0" for s in states),
                time_axis={"x": 0, "dh": 0},
            )
            variant = (
                {"c0": "input"}
                if "c" in roles and "c0" in [i.name for i in model.base_inputs]
                else {}
            )
            out.append(
                Skeleton(
                    plan,
                    "layer",
                    tuple(slots),
                    variant,
                    param_grads=("return",),
                    how=f"{fname} and {bname} per step",
                    returned_names=_returned(bfacts),
                )
            )
        else:
            plan = Plan(
                level="sequence", forward=forward, backward=backward, cache=cache, container=()
            )
            out.append(
                Skeleton(
                    plan,
                    "layer",
                    tuple(slots),
                    _variant(roles, model, False),
                    param_grads=("return",),
                    how=f"{fname} then {bname}",
                    returned_names=_returned(bfacts),
                )
            )
    return out


def _cache_index(fn: FunctionFacts | None) -> tuple:
    """Where the forward's cache is: the returned name that says cache, else the last."""
    for kind, names in fn.returns if fn else []:
        if kind == "tuple":
            for k, n in enumerate(names):
                if n and N.data_role(n) == "cache":
                    return (("index", k),)
    return (("last",),)


def _method(cls_obj: dict, candidates) -> str | None:
    methods = cls_obj.get("methods") or {}
    for name in candidates:
        if name in methods:
            return name
    return None


def _is_gradient_name(name: str) -> bool:
    return (name.startswith("d") and name[1:2].isupper()) or name.lower().startswith(
        ("grad", "dw", "db")
    )


def _inventory_slots(inventory: dict, model: ModelSpec) -> tuple[list, list[str]]:
    """Bind actions and slots for the parameter arrays an instance holds: attributes, or
    entries of a dict attribute (`self.parameters["Wf"]`)."""
    prepare: list = []
    slots: list[str] = []
    for attr, item in inventory.items():
        if not isinstance(item, dict) or _is_gradient_name(attr):
            continue
        if "array" in item and N.facts(attr, model) is not None:
            prepare.append({"bind": (("attr", attr),), "value": ("param", attr)})
            slots.append(attr)
        elif "dict" in item and attr.lower() not in ("grads", "gradients", "grad", "g", "cache"):
            for key, value in item["dict"]:
                if isinstance(value, dict) and "array" in value and N.facts(key, model):
                    prepare.append(
                        {"bind": (("attr", attr), ("key", key)), "value": ("param", key)}
                    )
                    slots.append(key)
    return prepare, slots


def _class_skeletons(
    name,
    obj,
    facts: SourceFacts,
    model: ModelSpec,
    method: str | None,
    index: int,
    inventory: dict | None,
    warm: bool,
) -> list[Skeleton]:
    cfacts = facts.classes.get(name)
    methods = obj.get("methods") or {}
    init_sig = methods.get("__init__") or obj.get("signature") or []
    init_params = [
        p[0]
        for p in init_sig
        if p[0] not in ("self",) and p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
    ]
    init_optional = {p[0] for p in init_sig if p[2]}
    ctor: list = []
    ctor_slots: list[str] = []
    stateful = None
    for p in init_params:
        if N.size_letter(p) and not _slot_facts(p, model):
            ctor.append(("size", N.size_letter(p)))
        elif p in init_optional:
            if p == "stateful":
                stateful = len(ctor)
            break
        elif _slot_facts(p, model):
            ctor.append(("param", p))
            ctor_slots.append(p)
        else:
            ctor.append(("size", "H"))  # an unknown required number: most often the width
    init = cfacts.methods.get("__init__") if cfacts else None
    sets = dict(init.sets) if init else {}
    # The parameters, when the constructor does not take them: a setter, or the arrays an
    # instance holds (seen by building one), or those a warm-up call creates.
    prepare: list = []
    slots = list(ctor_slots)
    setter = _method(obj, SETTERS)
    forward_name = _method(obj, FORWARD_METHODS)
    if not ctor_slots and setter:
        sig = [p[0] for p in (methods.get(setter) or []) if p[0] != "self"]
        prepare.append({"call": setter, "args": tuple(("param", p) for p in sig)})
        slots += sig
    elif not ctor_slots and inventory:
        binds, found = _inventory_slots(inventory, model)
        if found:
            if warm and forward_name:
                prepare.append({"call": forward_name, "args": (("data", "x_0"),)})
            prepare += binds
            reset = _method(obj, RESETS)
            if warm and reset:
                prepare.append({"call": reset})
            slots += found
    out: list[Skeleton] = []
    built_base = Built(cls=index, args=tuple(ctor), prepare=tuple(prepare))
    if not slots and not ctor_slots:
        return [
            Skeleton(
                Plan(level="build", forward=Call()),
                "layer",
                (),
                object_only=built_base,
                how=f"build {name}",
            )
        ]
    if method is not None and method not in BACKWARD_METHODS:  # Class.loss: one call
        msig = [p[0] for p in (methods.get(method) or []) if p[0] != "self"]
        mfacts = cfacts.methods.get(method) if cfacts else None
        args, _, extra, roles = _args_for(msig, set(), model, mfacts, False, {})
        plan = Plan(
            level="full",
            forward=Call(method=method, args=tuple(args)),
            object=built_base,
            loss=(("index", 0),),
        )
        variant = _variant(roles, model, False)
        return [
            Skeleton(
                plan,
                "full" if "y" in roles else "layer",
                tuple(slots + extra),
                variant,
                param_grads=("return",),
                how=f"{name}.{method}",
                returned_names=_returned(mfacts),
            )
        ]
    forward = method if method in FORWARD_METHODS else forward_name
    backward = _method(obj, BACKWARD_METHODS)
    if forward is None or backward is None:
        return []
    fsig = [
        p[0]
        for p in (methods.get(forward) or [])
        if p[0] != "self" and p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
    ]
    bsig = [
        p[0]
        for p in (methods.get(backward) or [])
        if p[0] != "self" and p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
    ]
    foptional = {p[0] for p in (methods.get(forward) or []) if p[2]}
    boptional = {p[0] for p in (methods.get(backward) or []) if p[2]}
    fparams = [p for p in fsig if p not in foptional]
    bparams = [p for p in bsig if p not in boptional]
    ffacts = cfacts.methods.get(forward) if cfacts else None
    bfacts = cfacts.methods.get(backward) if cfacts else None
    roles = {_role(p, model) for p in fparams}
    grads = _object_grads(cfacts, slots, ctor_slots, sets, backward)
    set_h0 = _method(obj, ("set_state",))
    state_prepare: list = []
    variant: dict = {}
    if len(fparams) >= 2 and ("h" in roles):  # forward(x, h_prev[, c_prev]): one step
        states = ("h", "c") if "c" in roles else ("h",)
        fargs = []
        for p in fparams:
            role = _role(p, model)
            fargs.append(
                ("data", "x_t")
                if role == "x" or (role is None and not fargs)
                else ("data", role)
                if role in ("h", "c")
                else ("param", p)
            )
        bargs = []
        for p in bparams:
            role = _role(p, model)
            bargs.append(("data", "dnext_c") if role == "dc" else ("data", "dnext_h"))
        fret = _returned(ffacts)
        nxt = {s: (("index", k),) for k, s in enumerate(states)}
        if len(states) == 1 and len(fret) <= 1:
            nxt = {"h": ()}
        back = {"x": (("index", 0),), **{s: (("index", 1 + k),) for k, s in enumerate(states)}}
        plan = Plan(
            level="step",
            forward=Call(method=forward, args=tuple(fargs)),
            backward=Call(method=backward, args=tuple(bargs)),
            object=replace(built_base, instances="per-step"),
            next=nxt,
            back=back,
            states=states,
            initials=tuple(f"{s}0" for s in states),
            time_axis={"x": 0, "dh": 0},
        )
        variant = {"c0": "input"} if "c" in roles else {}
        out.append(
            Skeleton(
                plan,
                "layer",
                tuple(slots),
                variant,
                param_grads=grads,
                how=f"{name} per step, one instance per step",
                returned_names=_returned(bfacts),
            )
        )
        return out
    # forward(xs) over the sequence, or forward(x_t) per step with the object's own state.
    sequence_first = bool(ffacts and ffacts.loops) or (fparams and fparams[0] in ("xs", "X"))
    kinds = ["sequence", "step"] if sequence_first else ["step", "sequence"]
    lstm_like = "c0" in [i.name for i in model.base_inputs]
    for kind in kinds:
        for with_state in (
            [True, False] if kind == "sequence" and set_h0 and stateful is not None else [False]
        ):
            ctor_args = list(ctor)
            variant = {"h0": "zero", **({"c0": "zero"} if lstm_like else {})}
            state_prepare = []
            if with_state:
                ctor_args.append(("value", True))
                sig = [p[0] for p in (methods.get(set_h0) or []) if p[0] != "self"]
                state_prepare = [
                    {
                        "call": set_h0,
                        "args": tuple(
                            ("array", "h0") if _role(p, model) == "h" else ("array", "c0")
                            for p in sig
                        ),
                    }
                ]
                variant = {"c0": "input" if len(sig) > 1 else "zero"} if lstm_like else {}
            built = replace(
                built_base, args=tuple(ctor_args), prepare=built_base.prepare + tuple(state_prepare)
            )
            data_grads: dict = {}
            if kind == "sequence":
                plan = Plan(
                    level="sequence",
                    forward=Call(method=forward, args=(("array", "x"),)),
                    backward=Call(method=backward, args=(("array", "dh"),)),
                    object=built,
                    container=None,
                )
                data_grads["x"] = ("return",)
                if with_state:
                    data_grads["h0"] = ("object", ("attr", "dh"))
                    if variant.get("c0") == "input":
                        data_grads["c0"] = ("object", ("attr", "dc"))
                how = f"{name}.{forward} over the sequence"
            else:
                plan = Plan(
                    level="step",
                    forward=Call(method=forward, args=(("data", "x_t"),)),
                    backward=Call(method=backward, args=(("data", "dnext_h"),)),
                    object=replace(built, instances="one"),
                    carry="object",
                    back={"x": ()},
                    time_axis={"x": 0, "dh": 0},
                )
                how = f"{name}.{forward} once per step (the object keeps state)"
            out.append(
                Skeleton(
                    plan,
                    "layer",
                    tuple(slots),
                    variant,
                    data_grads,
                    grads,
                    how=how,
                    returned_names=_returned(bfacts),
                )
            )
    return out


def _object_grads(cfacts, slots, ctor_slots, sets, backward) -> tuple | None:
    """Where an object keeps its parameters' gradients: ("object", "list", attr) for a list
    aligned with the constructor's parameters, ("object", "dict", attr), ("object",
    "attrs") for d<name> attributes; None when nothing says."""
    bfacts = cfacts.methods.get(backward) if cfacts else None
    for attr, (kind, _) in sets.items():
        if kind == "list" and attr.lower() in ("grads", "gradients", "dparams", "grad"):
            return ("object", "list", attr)
        if kind in ("dict", "other") and attr.lower() in ("grads", "gradients", "grad", "g"):
            return ("object", "dict", attr)
    if bfacts:
        for attr, key in bfacts.items:
            if isinstance(key, int):
                return ("object", "list", attr)
            if isinstance(key, str):
                return ("object", "dict", attr)
        if any(a.startswith("d") for a in bfacts.sets):
            return ("object", "attrs")
    if cfacts:
        for m in cfacts.methods.values():
            for attr in m.sets:
                if attr.lower() in ("gradients", "grads"):
                    return ("object", "dict", attr)
    return ("object", "attrs")


def skeletons(
    labels: list[str],
    objects: list[dict],
    facts: SourceFacts,
    model: ModelSpec,
    targets: int = 1,
    inventory: dict | None = None,
    warm: bool = False,
) -> list[Skeleton]:
    """Ways to call the target (its first `targets` objects; the rest are the classes of
    named methods), the likeliest first. `inventory`: the arrays an instance of a class
    holds once built (after a warm-up call with `warm`)."""
    if targets == 2:
        heads = {label.partition(".")[0] for label in labels[:2]}
        both_methods = all("." in label for label in labels[:2]) and len(heads) == 1
        head = next(iter(heads))
        cls = objects[labels.index(head)] if head in labels else None
        static = cls is None or all(
            facts.classes.get(head) is None or _static(facts, head, m.partition(".")[2])
            for m in labels[:2]
        )
        if both_methods and cls is not None and not static:
            method = labels[0].partition(".")[2]
            return _class_skeletons(
                head, cls, facts, model, method, labels.index(head), inventory, warm
            )
        return _pair_skeletons(labels[:2], objects[:2], facts, model)
    name, obj = labels[0], objects[0]
    head, _, method = name.partition(".")
    if obj.get("kind") == "class":
        return _class_skeletons(head, obj, facts, model, None, 0, inventory, warm)
    if method and head in labels:
        index = labels.index(head)
        return _class_skeletons(head, objects[index], facts, model, method, index, inventory, warm)
    return _function_skeletons(name, obj, facts, model)


def _static(facts: SourceFacts, cls: str, method: str) -> bool:
    """Whether a method is a staticmethod (a pair of them is a pair of functions)."""
    c = facts.classes.get(cls)
    m = c.methods.get(method) if c else None
    return m is not None and getattr(m, "static", False)


def _signature(fn: FunctionFacts) -> list:
    return [[p, "POSITIONAL_OR_KEYWORD", p in fn.optional] for p in ["self", *fn.params]]
