"""Parameter binding: a parsed command + a cmdlet spec -> typed arguments.

Follows PowerShell's binder (about_Parameters, about_Functions_Advanced_Parameters) for
the subset the shell speaks:

* parameter names are case-insensitive; a unique prefix of a name or alias is accepted,
  an exact match always wins, an ambiguous prefix is an error listing the candidates;
* a switch never takes the following token; ``-Switch:$false`` turns it off;
* every other parameter takes the next token (or its ``-Name:value``);
* values without a parameter name bind to positional parameters in position order;
* the identity of a piped object binds to the cmdlet's pipeline parameter;
* missing mandatory parameters are reported together (there is no prompting).

Values are converted per ``ParamSpec.type``; conversion errors name the parameter and
the expected type. The value of a ``secret`` parameter never appears in a message.
"""

from __future__ import annotations

import difflib

from gateway.admin.errors import CmdletError
from gateway.admin.parser import (
    Command,
    HashValue,
    ListValue,
    ParamArg,
    Scalar,
    SubExpression,
    Value,
    Variable,
)
from gateway.admin.registry import CmdletSpec, ListEdit, ParamSpec

PIPELINE_PLACEHOLDER = "\0pipeline"
"""Identity used to check a downstream command's binding before anything runs."""

_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "$true": True,
               "$false": False}
_SIZE_SUFFIXES = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def resolve_param(spec: CmdletSpec, name: str) -> ParamSpec:
    """The parameter ``-name`` designates: exact name/alias, else a unique prefix."""
    lowered = name.lower()
    for p in spec.params:
        if lowered == p.name.lower() or lowered in (a.lower() for a in p.aliases):
            return p
    matches = [p for p in spec.params
               if any(n.lower().startswith(lowered) for n in (p.name, *p.aliases))]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = " ".join(f"-{p.name}" for p in matches)
        raise CmdletError(
            f"{spec.name}: parameter name '{name}' is ambiguous. Possible matches include: "
            f"{listed}."
        )
    shown = name if len(name) <= 60 else name[:60] + "..."
    message = f"{spec.name}: a parameter cannot be found that matches parameter name '{shown}'."
    names = {n.lower(): p.name for p in spec.params for n in (p.name, *p.aliases)}
    close = difflib.get_close_matches(lowered, list(names), n=1, cutoff=0.5)
    if close:
        message += f" Did you mean -{names[close[0]]}?"
    elif spec.params:
        message += " Run Get-Help " + spec.name + " for its parameters."
    raise CmdletError(message)


def bind(
    spec: CmdletSpec, command: Command, piped_identity: str | None = None
) -> dict[str, object]:
    """Bind ``command``'s elements (and a piped identity) to ``spec``'s parameters."""
    raw: dict[str, tuple[ParamSpec, Value | None]] = {}
    positional: list[Value] = []
    elements = command.elements
    i = 0
    while i < len(elements):
        element = elements[i]
        i += 1
        if not isinstance(element, ParamArg):
            positional.append(element)
            continue
        param = resolve_param(spec, element.name)
        if param.name in raw:
            raise CmdletError(
                f"{spec.name}: cannot bind parameter '{param.name}' because it is specified "
                "more than once."
            )
        value = element.value
        if value is None and param.type != "switch":
            nxt = elements[i] if i < len(elements) else None
            if nxt is None or isinstance(nxt, ParamArg):
                raise CmdletError(
                    f"{spec.name}: missing an argument for parameter '{param.name}'. Specify a "
                    f"parameter of type '{param.type_name}' and try again."
                )
            value = nxt
            i += 1
        raw[param.name] = (param, value)

    free = sorted((p for p in spec.params if p.position is not None and p.name not in raw),
                  key=lambda p: p.position if p.position is not None else 0)
    for value in positional:
        if not free:
            raise CmdletError(
                f"{spec.name}: a positional parameter cannot be found that accepts argument "
                f"'{_preview(value)}'."
            )
        param = free.pop(0)
        raw[param.name] = (param, value)

    args: dict[str, object] = {}
    for name, (param, value) in raw.items():
        args[name] = convert(spec, param, value)

    if piped_identity is not None:
        target = spec.pipeline_param
        if target is None:
            raise CmdletError(
                f"{spec.name}: the input object cannot be bound to any parameters of the "
                "command because the command does not take pipeline input."
            )
        if target.name in args:
            raise CmdletError(
                f"{spec.name}: -{target.name} is given both on the command line and by the "
                "pipeline; give it only once."
            )
        args[target.name] = piped_identity

    missing = [p.name for p in spec.params if p.mandatory and p.name not in args]
    if missing:
        listed = ", ".join(f"-{m}" for m in missing)
        raise CmdletError(f"{spec.name}: missing mandatory parameter(s): {listed}.")
    return args


def convert(spec: CmdletSpec, param: ParamSpec, value: Value | None) -> object:
    """Convert one raw value to ``param``'s type (``None`` value: a bare switch)."""
    where = f"{spec.name}: parameter '{param.name}'"
    if param.type == "switch":
        if value is None:
            return True
        return _to_bool(where, param, value)
    assert value is not None
    assert not isinstance(value, SubExpression), "the runner evaluates subexpressions first"
    if isinstance(value, Variable) and value.name == "null":
        if param.nullable:
            return None
        raise CmdletError(f"{where}: cannot bind the argument because it is null.")
    if param.type == "bool":
        return _to_bool(where, param, value)
    if param.type == "list":
        if isinstance(value, HashValue):
            if not param.edit:
                raise CmdletError(f"{where} does not take a hashtable; give a comma list.")
            return _to_edit(where, param, value)
        items = value.items if isinstance(value, ListValue) else (value,)
        return [_to_str(where, param, item) for item in items]
    if isinstance(value, (ListValue, HashValue)):
        kind = "a list" if isinstance(value, ListValue) else "a hashtable"
        raise CmdletError(
            f"{where} takes a single {param.type_name} value, not {kind}."
        )
    if param.type == "int":
        return _to_int(where, param, value)
    text = _to_str(where, param, value)
    if param.type == "enum":
        for choice in param.choices:
            if choice.lower() == text.lower():
                return choice
        message = (f"{where}: cannot convert '{_clip(text)}' to one of the valid values "
                   f"{', '.join(param.choices)}.")
        close = difflib.get_close_matches(text, param.choices, n=1, cutoff=0.5)
        if close:
            message += f" Did you mean '{close[0]}'?"
        raise CmdletError(message)
    return text


def _to_str(where: str, param: ParamSpec, value: Value) -> str:
    if isinstance(value, Variable):
        if value.name == "null":
            raise CmdletError(f"{where}: a list item cannot be null.")
        return "True" if value.name == "true" else "False"
    if not isinstance(value, Scalar):
        raise CmdletError(f"{where}: lists and hashtables cannot be nested here.")
    if value.secret and not param.secret:
        raise CmdletError(f"{where}: a SecureString can only be given to a password parameter.")
    if len(value.text) > param.max_length:
        raise CmdletError(f"{where}: the value is longer than {param.max_length} characters.")
    return value.text


def _to_bool(where: str, param: ParamSpec, value: Value) -> bool:
    # PowerShell: "Boolean parameters accept only Boolean values and numbers, such as
    # $True, $False, 1 or 0." Bare true/false are accepted too, for shells that would
    # expand "$false" inside double quotes.
    if isinstance(value, Variable):
        if value.name == "true":
            return True
        if value.name == "false":
            return False
        raise CmdletError(f"{where}: cannot convert null to type Boolean.")
    if isinstance(value, Scalar) and value.text.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.text.lower()]
    shown = "a list" if isinstance(value, (ListValue, HashValue)) else f"'{_preview(value)}'"
    raise CmdletError(
        f"{where}: cannot convert {shown} to type Boolean. Boolean parameters accept only "
        "$true, $false, 1 or 0."
    )


def _to_int(where: str, param: ParamSpec, value: Value) -> int:
    if not isinstance(value, Scalar):
        raise CmdletError(f"{where}: cannot convert '{_preview(value)}' to type Int32.")
    text = value.text.strip().replace("_", "")
    factor = 1
    suffix = text[-2:].lower()
    if suffix in _SIZE_SUFFIXES:  # PowerShell numeric multipliers: 10MB
        factor = _SIZE_SUFFIXES[suffix]
        text = text[:-2]
    try:
        if len(text) > 30:
            raise ValueError
        number = int(text, 10) * factor
    except ValueError:
        raise CmdletError(
            f"{where}: cannot convert '{_clip(value.text)}' to type Int32."
        ) from None
    low, high = param.minimum, param.maximum
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"{low if low is not None else '...'} to {high if high is not None else '...'}"
        raise CmdletError(f"{where}: the value {number} is outside the range {bounds}.")
    return number


def _to_edit(where: str, param: ParamSpec, value: HashValue) -> ListEdit:
    add: list[str] = []
    remove: list[str] = []
    for key, item in value.entries:
        items = item.items if isinstance(item, ListValue) else (item,)
        texts = [_to_str(where, param, x) for x in items]
        if key.lower() == "add":
            add.extend(texts)
        elif key.lower() == "remove":
            remove.extend(texts)
        else:
            raise CmdletError(
                f"{where}: the hashtable key '{_clip(key)}' is not valid; use Add and Remove."
            )
    return ListEdit(tuple(add), tuple(remove))


def _preview(value: Value) -> str:
    if isinstance(value, Scalar):
        return _clip(value.text)
    if isinstance(value, Variable):
        return f"${value.name}"
    return "list" if isinstance(value, ListValue) else "hashtable"


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."
