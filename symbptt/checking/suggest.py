"""A convention said back to the user: as the command line that declares it, as prose, and as
a TOML file a grader keeps (`--convention FILE`).

The command is exact: run as printed, it declares the model variant, the form and every field
of the convention that differs from the defaults, and the check then calls the code the way
the search found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models.spec import MODEL_OPTIONS, ModelSpec, Options
from .convention import Convention
from .usercode import Calling

__all__ = ["command", "describe", "toml_text", "declared_from", "model_flags"]


def model_flags(model: ModelSpec) -> list[str]:
    """The command-line options that make this model variant."""
    out: list[str] = []
    if model.from_file:
        return ["--model", str(model.definition.path or model.name)]
    if model.name != "vanilla":
        out += ["--model", {"lstm": "lstm", "gru": "gru"}.get(model.name, model.name)]
    default = Options()
    o = model.options
    for bias in o.no_bias:
        out += ["--no-bias", bias]
    if o.h0 != default.h0:
        out += ["--h0", o.h0]
    if o.inputs != default.inputs:
        out += ["--inputs", o.inputs]
    if o.activation != default.activation:
        out += ["--activation", o.activation]
    if o.reduction != default.reduction:
        out += ["--reduction", o.reduction]
    if o.truncate is not None:
        out += ["--truncate", str(o.truncate)]
    for option in MODEL_OPTIONS:
        if option in model.choices and getattr(o, option) != getattr(default, option):
            out += [f"--{option.replace('_', '-')}", str(getattr(o, option))]
    return out


def _convention_flags(conv: Convention) -> list[str]:
    out: list[str] = []
    if conv.layout != "row":
        out += ["--layout", conv.layout]
    if conv.sequence == "NTF":
        out += ["--batch-first"]
    elif conv.sequence != "TNF":
        out += ["--sequence", conv.sequence]
    default_state = Convention(sequence=conv.sequence).state_axes
    if conv.state_axes != default_state:
        out += ["--state", conv.state_axes]
    if conv.bias_axes != Convention(layout=conv.layout).bias_axes:
        out += ["--bias", conv.bias_axes]
    if conv.gates is not None:
        out += ["--gates", conv.gates]
    if conv.weights != "fused":
        out += ["--weights", conv.weights]
    if conv.stack is not None:
        out += ["--stack", conv.stack]
    if conv.split:
        out += ["--split-bias"]
    if conv.update != "prev":
        out += ["--update", conv.update]
    renamed = {p: u for p, u in conv.names.items() if p != u}
    if renamed:
        out += ["--names", ",".join(f"{p}={u}" for p, u in renamed.items())]
    return out


def command(target: str, calling: Calling, step: bool | None = None) -> list[str]:
    """The argument list after the program name that checks `target` as `calling` does."""
    argv = ["check", target, *model_flags(calling.model)]
    if calling.form != "full":
        argv += ["--form", calling.form]
    argv += _convention_flags(calling.arrays)
    if calling.order:
        argv += ["--order", ",".join(calling.order)]
    plan = calling.effective_plan
    returned = [g for g in calling.gradients if g in plan.grads]
    if calling.plan is not None and len(returned) < len(calling.gradients):
        loss = ["loss"] if calling.form == "full" and plan.loss is not None else []
        argv += ["--only", ",".join([*returned, *loss])]
    if step is not None:
        argv += ["--step", "yes" if step else "no"]
    return argv


def describe(calling: Calling) -> str:
    """The convention in a few words (for a report)."""
    conv, model = calling.arrays, calling.model
    bits = [f"the {model.title or model.name}"]
    options = [f"{k}={v}" for k, v in _variant(model).items()]
    if options:
        bits[0] += f" ({', '.join(options)})"
    bits.append(f"{calling.form} form")
    bits.append(f"{conv.layout} layout")
    bits.append(f"data axes {conv.sequence}")
    if conv.gates:
        bits.append(f"gates in the order {', '.join(conv.gates)}")
    if conv.weights != "fused":
        bits.append("one weight per gate")
    if conv.stack:
        bits.append(f"stacked rows {conv.stack}")
    if conv.split:
        bits.append("the bias as b_ih + b_hh")
    if conv.update != "prev":
        bits.append("h = (1-z) h_prev + z n")
    return ", ".join(bits)


def _variant(model: ModelSpec) -> dict[str, Any]:
    default = Options()
    out: dict[str, Any] = {}
    for key, value in model.options.as_dict().items():
        if key in MODEL_OPTIONS and key not in model.choices:
            continue
        if value != getattr(default, key) and value not in ([], ()):
            out[key] = value
    return out


def toml_text(calling: Calling) -> str:
    """The TOML file that declares this convention (`--convention FILE`)."""
    import tomli_w

    model = calling.model
    data: dict[str, Any] = {}
    if model.from_file:
        data["model"] = {"file": str(model.definition.path or model.name)}
    else:
        data["model"] = {"name": model.name, **_variant(model)}
    data["model"]["form"] = calling.form
    arrays = calling.arrays.as_dict()
    names = arrays.pop("names", None)
    data["arrays"] = arrays
    if names:
        data["names"] = names
    if calling.order:
        data["returns"] = {"order": list(calling.order)}
    header = (
        "# symbptt convention: how this code holds the model's arrays.\n"
        "# Check code with it: symbptt check TARGET --convention THIS_FILE\n"
    )
    return header + tomli_w.dumps(data)


def declared_from(
    data: Mapping[str, Any], where: str
) -> tuple[dict, str | None, Convention, tuple | None]:
    """(model section, form, convention, order) from a parsed convention file."""
    from ..errors import InvalidArgumentError

    known = {"model", "arrays", "names", "returns"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidArgumentError(
            f"{where} has the unknown section [{unknown[0]}]; sections are "
            f"{', '.join(sorted(known))}"
        )
    model = dict(data.get("model") or {})
    form = model.pop("form", None)
    arrays = dict(data.get("arrays") or {})
    if "names" in data:
        arrays["names"] = dict(data["names"])
    convention = Convention.from_dict(arrays, where=f"{where} [arrays]")
    returns = dict(data.get("returns") or {})
    bad = sorted(set(returns) - {"order"})
    if bad:
        raise InvalidArgumentError(f"{where} [returns] has the unknown key {bad[0]!r}")
    order = tuple(returns["order"]) if "order" in returns else None
    return model, form, convention, order
