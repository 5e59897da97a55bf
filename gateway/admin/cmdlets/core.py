"""Shell cmdlets: Get-Command, Get-Help, Format-List, Format-Table, ConvertTo-Json.

Get-Command and Get-Help read the registry, so every declared cmdlet is listed and
documented without further work. The formatting cmdlets select properties and set the
view; they must end a pipeline (see ``runner``).
"""

from __future__ import annotations

import fnmatch
import textwrap

from gateway.admin.errors import CmdletError
from gateway.admin.registry import REGISTRY, CmdletSpec, Invocation, Output, ParamSpec, Record
from gateway.admin.runner import default_registry

_HELP_INTRO = """\
The gateway's admin shell speaks a PowerShell-style cmdlet language:

    Verb-Noun -Parameter value -Switch -Parameter:value PositionalValue

    - strings: 'single quoted' ('' is a quote) or "double quoted" (`" and `n escapes)
    - lists: a@example.test,b@example.test  or  "a","b"
    - $true, $false and $null; switches: -MakeDefault, -Confirm:$false
    - parameter names are case-insensitive and may be shortened to a unique prefix
    - pipelines: Get-Mailbox alice | Set-CASMailbox -ImapEnabled $false
    - subexpressions: -Password (ConvertTo-SecureString 'S3cret!pass' -AsPlainText -Force)
    - views: | Format-List, | Format-Table, | ConvertTo-Json

Get-Command lists the cmdlets; Get-Help <cmdlet> explains one."""


@REGISTRY.cmdlet(
    "Get-Command",
    synopsis="Lists the cmdlets of the shell.",
    params=(
        ParamSpec("Name", position=0, help="Cmdlet name; wildcards * and ? are allowed."),
        ParamSpec("Verb", help="Only cmdlets with this verb (wildcards allowed)."),
        ParamSpec("Noun", help="Only cmdlets with this noun (wildcards allowed)."),
    ),
    examples=("Get-Command *Mailbox*", "Get-Command -Verb Get"),
    aliases=("gcm",),
)
async def get_command(inv: Invocation) -> list[Output]:
    registry = inv.ctx.registry or default_registry()
    filters = [(str(inv.args[key]), attr) for key, attr in
               (("Name", "name"), ("Verb", "verb"), ("Noun", "noun")) if key in inv.args]
    out: list[Output] = []
    for spec in registry.all():
        if all(fnmatch.fnmatchcase(getattr(spec, attr).lower(), pattern.lower())
               for pattern, attr in filters):
            out.append(Record(
                "CommandInfo", spec.name,
                {"Name": spec.name, "Verb": spec.verb, "Noun": spec.noun,
                 "Synopsis": spec.synopsis, "Syntax": spec.syntax()},
                ("Name", "Synopsis"),
            ))
    if not out and "Name" in inv.args and not any(c in str(inv.args["Name"]) for c in "*?"):
        registry.get(str(inv.args["Name"]))  # raises with the nearest cmdlet name
    return out


@REGISTRY.cmdlet(
    "Get-Help",
    synopsis="Explains the shell's syntax, or one cmdlet and its parameters.",
    params=(ParamSpec("Name", position=0, help="The cmdlet to explain."),),
    examples=("Get-Help", "Get-Help New-Mailbox"),
    aliases=("help",),
)
async def get_help(inv: Invocation) -> list[Output]:
    registry = inv.ctx.registry or default_registry()
    name = inv.args.get("Name")
    if name is None:
        return [_HELP_INTRO]
    if any(c in str(name) for c in "*?"):
        matching = [s for s in registry.all()
                    if fnmatch.fnmatchcase(s.name.lower(), str(name).lower())]
        if not matching:
            raise CmdletError(f"Get-Help: no cmdlet matches '{name}'.")
        if len(matching) > 1:
            return [Record("HelpInfo", s.name, {"Name": s.name, "Synopsis": s.synopsis},
                           ("Name", "Synopsis")) for s in matching]
        return [help_text(matching[0])]
    return [help_text(registry.get(str(name)))]


def help_text(spec: CmdletSpec) -> str:
    """The Get-Help page of one cmdlet."""
    wrap = textwrap.TextWrapper(width=88, initial_indent="    ", subsequent_indent="    ")
    lines = ["NAME", f"    {spec.name}", "", "SYNOPSIS", *wrap.wrap(spec.synopsis), "",
             "SYNTAX", *wrap.wrap(spec.syntax())]
    if spec.description:
        lines += ["", "DESCRIPTION", *wrap.wrap(spec.description)]
    if spec.aliases:
        lines += ["", "ALIASES", f"    {', '.join(spec.aliases)}"]
    if spec.params:
        lines += ["", "PARAMETERS"]
        inner = textwrap.TextWrapper(width=88, initial_indent="        ",
                                     subsequent_indent="        ")
        for p in spec.params:
            lines.append(f"    -{p.name} <{param_type_text(p)}>")
            if p.help:
                lines += inner.wrap(p.help)
            lines.append(f"        Required?                    {str(p.mandatory).lower()}")
            position = "named" if p.position is None else str(p.position)
            lines.append(f"        Position?                    {position}")
            lines.append(f"        Accept pipeline input?       {str(p.pipeline).lower()}")
            if p.aliases:
                lines.append(f"        Aliases                      {', '.join(p.aliases)}")
            lines.append("")
        lines.pop()
    if spec.examples:
        lines += ["", "EXAMPLES", *(f"    PS> {example}" for example in spec.examples)]
    return "\n".join(lines)


def param_type_text(p: ParamSpec) -> str:
    """``String``, ``Boolean``, ``Authoritative | InternalRelay`` ... for help and docs."""
    if p.type == "enum":
        return " | ".join(p.choices)
    return p.type_name


def _select(inputs: list[Output], properties: list[str] | None) -> list[Output]:
    """Keep the named properties (wildcards allowed, case-insensitive) of each object."""
    if properties is None:
        return list(inputs)
    out: list[Output] = []
    for obj in inputs:
        if isinstance(obj, str):
            out.append(obj)
            continue
        chosen = [name for name in obj.properties
                  if any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in properties)]
        out.append(Record(obj.type_name, obj.identity,
                          {name: obj.properties[name] for name in chosen}, tuple(chosen),
                          secret=obj.secret))
    return out


_PROPERTY = ParamSpec(
    "Property", "list", position=0,
    help="The properties to show (wildcards allowed); all of them when omitted.",
)


@REGISTRY.cmdlet(
    "Format-List",
    synopsis="Shows each piped object as a list of 'Name : value' lines.",
    params=(_PROPERTY,),
    formats_as="list",
    aliases=("fl",),
    examples=("Get-Mailbox | Format-List Name,EmailAddresses",),
)
async def format_list(inv: Invocation) -> list[Output]:
    return _select(inv.input, _properties(inv))


@REGISTRY.cmdlet(
    "Format-Table",
    synopsis="Shows the piped objects as a table.",
    params=(_PROPERTY,),
    formats_as="table",
    aliases=("ft",),
    examples=("Get-CASMailbox | Format-Table Name,ImapEnabled,PopEnabled",),
)
async def format_table(inv: Invocation) -> list[Output]:
    return _select(inv.input, _properties(inv))


@REGISTRY.cmdlet(
    "ConvertTo-Json",
    synopsis="Shows the piped objects as a JSON array.",
    formats_as="json",
    examples=("Get-AcceptedDomain | ConvertTo-Json",),
)
async def convert_to_json(inv: Invocation) -> list[Output]:
    return list(inv.input)


def _properties(inv: Invocation) -> list[str] | None:
    value = inv.args.get("Property")
    return [str(v) for v in value] if isinstance(value, list) else None


@REGISTRY.cmdlet(
    "ConvertTo-SecureString",
    synopsis="Wraps a plain-text password for a -Password parameter (Exchange's idiom).",
    description="The result is shown as System.Security.SecureString, never as text; it "
                "can only be given to a password parameter, as a subexpression.",
    params=(
        ParamSpec("String", mandatory=True, position=0, secret=True, max_length=1024,
                  help="The password text."),
        ParamSpec("AsPlainText", "switch",
                  help="Required: the string is plain text (encrypted strings are not "
                       "supported)."),
        ParamSpec("Force", "switch", help="Accepted for compatibility; has no effect."),
    ),
    examples=("New-Mailbox alice -Password (ConvertTo-SecureString -String 'S3cret!pass' "
              "-AsPlainText -Force)",),
)
async def convert_to_secure_string(inv: Invocation) -> list[Output]:
    if inv.args.get("AsPlainText") is not True:
        raise CmdletError(
            "ConvertTo-SecureString: only plain text input is supported; add -AsPlainText."
        )
    text = str(inv.args["String"])
    return [Record(
        "SecureString", text,
        {"Type": "System.Security.SecureString", "Length": len(text)},
        ("Type", "Length"), secret=True,
    )]
