"""The cmdlet registry: typed declarations of every cmdlet and its parameters.

Role: one place where cmdlets are declared (``@REGISTRY.cmdlet(...)``) with their
parameter specs, so the binder, ``Get-Command``, ``Get-Help`` and docs/cmdlets.md all
read the same data. Later issues add connector, queue and protocol-settings cmdlets by
declaring them in a new module under ``gateway.admin.cmdlets`` and importing it there.

Invariants checked at declaration time (a mistake is a programming error, so
``ValueError`` at import): cmdlet names are ``Verb-Noun`` and unique
(case-insensitive); parameter names and aliases are unique within a cmdlet; positions
are unique; an enum has choices; at most one parameter takes pipeline input.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from gateway.admin.errors import CmdletError

if TYPE_CHECKING:
    from gateway.admin.context import AdminContext

ParamType = Literal["str", "int", "bool", "switch", "list", "enum"]
OutputFormat = Literal["list", "table", "json"]

DEFAULT_MAX_LENGTH = 1024
"""Longest string accepted for a ``str`` or ``list`` item unless a spec says otherwise."""

_TYPE_NAMES = {
    "str": "String", "int": "Int32", "bool": "Boolean", "switch": "SwitchParameter",
    "list": "String[]", "enum": "String",
}
_CMDLET_NAME = re.compile(r"^[A-Za-z]+-[A-Za-z][A-Za-z0-9]*$")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a cmdlet.

    ``position`` makes it positional (0 first); ``pipeline`` binds it from the
    identity of objects piped in (Exchange's ``Identity``). ``nullable`` accepts
    ``$null`` (the value is then ``None``); ``secret`` keeps the value out of every
    message; ``edit`` lets a list take Exchange's ``@{Add=...; Remove=...}`` form.
    """

    name: str
    type: ParamType = "str"
    help: str = ""
    mandatory: bool = False
    position: int | None = None
    pipeline: bool = False
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    nullable: bool = False
    secret: bool = False
    edit: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = DEFAULT_MAX_LENGTH

    @property
    def type_name(self) -> str:
        """The .NET-style type name shown by Get-Help and in conversion errors."""
        return _TYPE_NAMES[self.type]


@dataclass(frozen=True)
class ListEdit:
    """Exchange's multi-valued edit ``@{Add="a","b"; Remove="c"}``."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(eq=False)
class Record:
    """One output object: a type name, ordered properties and its pipeline identity.

    ``table_columns`` are the default columns of the table view (Exchange's
    per-type default view); the list and JSON views show every property.
    """

    type_name: str
    identity: str
    properties: dict[str, object]
    table_columns: tuple[str, ...] = ()
    secret: bool = False  # a SecureString: ``identity`` is the secret, never shown or piped


Output = Record | str
Handler = Callable[["Invocation"], Awaitable[list[Output]]]


@dataclass(frozen=True)
class CmdletSpec:
    """A declared cmdlet. ``formats_as`` marks a formatting cmdlet (Format-List ...)
    that receives the pipeline's objects instead of running once per object;
    ``confirm_impact="High"`` asks for confirmation in an interactive session."""

    name: str
    synopsis: str
    params: tuple[ParamSpec, ...]
    handler: Handler
    description: str = ""
    pipeline_types: frozenset[str] = frozenset()
    formats_as: OutputFormat | None = None
    confirm_impact: Literal["None", "Medium", "High"] = "None"
    examples: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # PowerShell's built-in aliases, e.g. fl, ft

    @property
    def verb(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def noun(self) -> str:
        return self.name.split("-", 1)[1]

    @property
    def pipeline_param(self) -> ParamSpec | None:
        return next((p for p in self.params if p.pipeline), None)

    def syntax(self) -> str:
        """PowerShell-style syntax line, e.g. ``Get-Mailbox [[-Identity] <String>]``."""
        parts = [self.name]
        for p in sorted(self.params, key=_syntax_order):
            if p.type == "switch":
                text = f"-{p.name}"
            else:
                shown = "|".join(p.choices) if p.type == "enum" else p.type_name
                name = f"[-{p.name}]" if p.position is not None else f"-{p.name}"
                text = f"{name} <{shown}>"
            parts.append(text if p.mandatory else f"[{text}]")
        return " ".join(parts)


def _syntax_order(p: ParamSpec) -> tuple[int, int, str]:
    if p.position is not None:
        return (0, p.position, p.name)
    return (1 if p.mandatory else 2, 0, p.name)


@dataclass
class Invocation:
    """What a handler receives: the context, its bound arguments and piped input.

    ``args`` holds only the parameters the operator gave (by canonical name); use
    ``get`` with a default for the others.
    """

    ctx: AdminContext
    cmdlet: CmdletSpec
    args: dict[str, object]
    input: list[Output] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.args

    def warn(self, text: str) -> None:
        """A warning for the operator (PowerShell's warning stream): shown after the
        output in the list and table views, left out of JSON."""
        self.warnings.append(f"WARNING: {text}")

    def warn_unchanged(self, identity: str) -> None:
        """Exchange's warning for a Set-* that changes nothing."""
        self.warn(f"The command completed successfully but no settings of '{identity}' have "
                  "been modified.")

    def get(self, name: str, default: object = None) -> object:
        return self.args.get(name, default)

    async def should_process(self, action: str, target: str) -> bool:
        """ShouldProcess: True when the change may go ahead.

        ``-WhatIf`` describes the change and answers False.
        ``-Confirm:$false`` never asks. ``-Confirm`` or a High-impact cmdlet asks when
        the context has a prompt (interactive shell). Without one (``gateway exec``,
        Exchange's non-interactive execution context) High-impact cmdlets proceed,
        and an explicit ``-Confirm`` is refused because nobody could answer it.
        """
        if self.args.get("WhatIf") is True:
            self.warnings.append(
                f'What if: Performing the operation "{action}" on target "{target}".'
            )
            return False
        wanted = self.args.get("Confirm")
        if wanted is False:
            return True
        if wanted is not True and self.cmdlet.confirm_impact != "High":
            return True
        prompt = self.ctx.confirm
        if prompt is None:
            if wanted is True:
                raise CmdletError(
                    f"{self.cmdlet.name}: -Confirm needs an interactive session; "
                    "use -Confirm:$false to run without asking."
                )
            return True
        return await prompt(
            f'Are you sure you want to perform this action?\n{action} "{target}".'
        )


class Registry:
    """Cmdlet specs by case-insensitive name."""

    def __init__(self) -> None:
        self._specs: dict[str, CmdletSpec] = {}
        self._aliases: dict[str, CmdletSpec] = {}

    def add(self, spec: CmdletSpec) -> None:
        _check_spec(spec)
        for key in (spec.name.lower(), *(a.lower() for a in spec.aliases)):
            if key in self._specs or key in self._aliases:
                raise ValueError(f"cmdlet name or alias {key} is declared twice")
        self._specs[spec.name.lower()] = spec
        for alias in spec.aliases:
            self._aliases[alias.lower()] = spec

    def cmdlet(
        self,
        name: str,
        *,
        synopsis: str,
        params: tuple[ParamSpec, ...] = (),
        description: str = "",
        pipeline_types: tuple[str, ...] = (),
        formats_as: OutputFormat | None = None,
        confirm_impact: Literal["None", "Medium", "High"] = "None",
        examples: tuple[str, ...] = (),
        aliases: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Decorator declaring ``handler`` as cmdlet ``name``."""

        def register(handler: Handler) -> Handler:
            self.add(CmdletSpec(
                name=name, synopsis=synopsis, params=params, handler=handler,
                description=description, pipeline_types=frozenset(pipeline_types),
                formats_as=formats_as, confirm_impact=confirm_impact, examples=examples,
                aliases=aliases,
            ))
            return handler

        return register

    def get(self, name: str) -> CmdletSpec:
        """The spec of ``name``; ``CmdletError`` naming the nearest cmdlet otherwise."""
        spec = self._specs.get(name.lower()) or self._aliases.get(name.lower())
        if spec is not None:
            return spec
        shown = name if len(name) <= 60 else name[:60] + "..."
        message = f"The term '{shown}' is not recognized as the name of a cmdlet."
        close = difflib.get_close_matches(name.lower(), list(self._specs), n=1, cutoff=0.6)
        if close:
            message += f" Did you mean '{self._specs[close[0]].name}'?"
        else:
            message += " Run Get-Command to list the available cmdlets."
        raise CmdletError(message)

    def all(self) -> list[CmdletSpec]:
        """Every cmdlet, ordered by noun then verb (as Get-Command groups them)."""
        return sorted(self._specs.values(), key=lambda s: (s.noun.lower(), s.verb.lower()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name.lower() in self._specs
                                          or name.lower() in self._aliases)


def _check_spec(spec: CmdletSpec) -> None:
    if not _CMDLET_NAME.match(spec.name):
        raise ValueError(f"cmdlet name {spec.name!r} is not Verb-Noun")
    seen: set[str] = set()
    positions: set[int] = set()
    pipeline = 0
    for p in spec.params:
        for n in (p.name, *p.aliases):
            if n.lower() in seen:
                raise ValueError(f"{spec.name}: parameter name {n} is declared twice")
            seen.add(n.lower())
        if p.position is not None:
            if p.position in positions:
                raise ValueError(f"{spec.name}: position {p.position} is declared twice")
            positions.add(p.position)
        if p.type == "enum" and not p.choices:
            raise ValueError(f"{spec.name}: enum parameter {p.name} has no choices")
        if p.edit and p.type != "list":
            raise ValueError(f"{spec.name}: only a list parameter takes @{{Add/Remove}}")
        pipeline += p.pipeline
    if pipeline > 1:
        raise ValueError(f"{spec.name}: more than one parameter takes pipeline input")


REGISTRY = Registry()
"""The shell's registry; cmdlet modules under ``gateway.admin.cmdlets`` declare into it."""

CONFIRM = ParamSpec(
    "Confirm", "switch",
    help="-Confirm asks before the change (interactive shell only); -Confirm:$false never "
         "asks.",
)
WHATIF = ParamSpec(
    "WhatIf", "switch",
    help="Shows what the command would change, and changes nothing.",
)
SHOULD_PROCESS = (CONFIRM, WHATIF)
"""The common parameters of every cmdlet that changes something."""
