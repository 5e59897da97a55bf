"""``run_line``: parse, bind and execute one command line; render its output.

Execution model (Exchange / PowerShell pipelines):

* statements separated by ``;`` run in order; the first error stops the line;
* every command of a pipeline is resolved and bound before anything runs, so a typo
  on the right of ``|`` cannot leave the left half's change applied alone;
* subexpressions ``( ... )`` in arguments run first, left to right; an object of
  their output stands for its identity, several make a list;
* the objects of the left side become the identity of the right side: a cmdlet with a
  pipeline parameter (``-Identity``) runs once per object (``Get-Mailbox alice |
  Set-CASMailbox -ImapEnabled $false``); if the left side yields nothing it does not
  run; a formatting cmdlet (Format-List, Format-Table, ConvertTo-Json) receives all
  objects and must end the pipeline;
* the view is chosen by the last formatting cmdlet if any, else by ``output_format``,
  else automatically (one object as a list, several as a table). For ``json`` the
  objects of every statement form one array;
* warnings (``Invocation.warn``, e.g. a Set-* that changed nothing) and ``-WhatIf``
  notes follow a statement's output as ``WARNING: ...`` / ``What if: ...`` lines in the
  list and table views; JSON output holds objects only, so it stays parseable.

Errors: ``CmdletError`` for anything the operator did or the store refused
(``gateway.errors.GatewayError`` messages are passed on); any other exception is a bug:
it is logged with its traceback and reported as a one-line internal error.
"""

from __future__ import annotations

import logging

from gateway.admin.binding import PIPELINE_PLACEHOLDER, bind
from gateway.admin.context import AdminContext
from gateway.admin.errors import CmdletError
from gateway.admin.formatting import FORMATS, render
from gateway.admin.parser import (
    Command,
    Element,
    HashValue,
    ListValue,
    ParamArg,
    Pipeline,
    Scalar,
    SubExpression,
    Value,
    Variable,
    parse,
)
from gateway.admin.registry import CmdletSpec, Invocation, Output, Record, Registry
from gateway.errors import GatewayError

log = logging.getLogger("gateway.admin")

MAX_PIPELINE_OBJECTS = 100_000
"""Most objects one pipeline stage may pass on."""


def default_registry() -> Registry:
    """The registry with every built-in cmdlet declared."""
    import gateway.admin.cmdlets  # noqa: F401  (declares the cmdlets on import)
    from gateway.admin.registry import REGISTRY

    return REGISTRY


async def run_line(ctx: AdminContext, line: str, output_format: str | None = None) -> str:
    """Run one cmdlet line and return its rendered output ('' when it prints nothing).

    ``output_format``: ``"list"``, ``"table"``, ``"json"`` or ``None``/``"auto"``.
    Raises ``CmdletError`` on every failure.
    """
    fmt = output_format or "auto"
    if fmt not in FORMATS:
        raise CmdletError(
            f"Unknown output format '{output_format}'; use one of {', '.join(FORMATS)}."
        )
    registry = ctx.registry or default_registry()
    statements = parse(line)
    if not statements:
        return ""
    blocks: list[str] = []
    everything: list[Output] = []
    one_json_array = fmt == "json"
    for pipeline in statements:
        warnings: list[str] = []
        try:
            outputs, chosen = await _run_pipeline(ctx, registry, pipeline, warnings)
        except (CmdletError, GatewayError) as exc:
            raise _as_cmdlet_error(exc) from None
        except Exception:
            log.exception("cmdlet %s failed unexpectedly", pipeline[-1].name)
            raise CmdletError(
                f"{pipeline[-1].name}: internal error; the details are in the server log."
            ) from None
        everything.extend(outputs)
        if chosen not in (None, "json"):
            one_json_array = False  # a Format-List/-Table in the line wins over JSON
        text = render(outputs, chosen or fmt)
        if text:
            blocks.append(text)
        if warnings:
            blocks.append("\n".join(warnings))
    if one_json_array:
        return render(everything, "json")
    return "\n\n".join(blocks)


def _as_cmdlet_error(exc: Exception) -> CmdletError:
    if isinstance(exc, CmdletError):
        return exc
    return CmdletError(str(exc) or type(exc).__name__)


async def _run_pipeline(
    ctx: AdminContext, registry: Registry, pipeline: Pipeline, warnings: list[str]
) -> tuple[list[Output], str | None]:
    specs = [registry.get(command.name) for command in pipeline]
    # Arguments first (as PowerShell does): every subexpression runs, left to right.
    pipeline = tuple([await _evaluate_command(ctx, registry, c, warnings) for c in pipeline])
    last = len(pipeline) - 1
    for index, (spec, command) in enumerate(zip(specs, pipeline, strict=True)):
        if spec.formats_as is not None and index != last:
            raise CmdletError(f"{spec.name} must be the last command of a pipeline.")
        piped = None
        if index > 0 and spec.formats_as is None:
            if spec.pipeline_param is None:
                raise CmdletError(
                    f"{spec.name}: the input object cannot be bound to any parameters of "
                    "the command because the command does not take pipeline input."
                )
            piped = PIPELINE_PLACEHOLDER
        bind(spec, command, piped)  # validate every stage before anything runs

    outputs = await _invoke(ctx, specs[0], bind(specs[0], pipeline[0]), [], warnings)
    chosen: str | None = None
    for spec, command in zip(specs[1:], pipeline[1:], strict=True):
        if spec.formats_as is not None:
            outputs = await _invoke(ctx, spec, bind(spec, command), outputs, warnings)
            chosen = spec.formats_as
            continue
        results: list[Output] = []
        for obj in outputs:
            if not isinstance(obj, Record):
                raise CmdletError(
                    f"{spec.name}: text output cannot be piped to a cmdlet; only objects can."
                )
            if obj.secret:
                raise CmdletError(
                    f"{spec.name}: a SecureString cannot be piped; give it to a password "
                    "parameter as (ConvertTo-SecureString ...)."
                )
            if spec.pipeline_types and obj.type_name not in spec.pipeline_types:
                accepted = ", ".join(sorted(spec.pipeline_types))
                raise CmdletError(
                    f"{spec.name}: a {obj.type_name} object cannot be piped to this cmdlet "
                    f"(it takes {accepted})."
                )
            results.extend(
                await _invoke(ctx, spec, bind(spec, command, obj.identity), [], warnings)
            )
            if len(results) > MAX_PIPELINE_OBJECTS:
                raise CmdletError(f"{spec.name}: more than {MAX_PIPELINE_OBJECTS} objects.")
        outputs = results
    return outputs, chosen


async def _evaluate_command(
    ctx: AdminContext, registry: Registry, command: Command, warnings: list[str]
) -> Command:
    """``command`` with each subexpression replaced by the value of its output."""
    if not any(_has_subexpression(e) for e in command.elements):
        return command
    elements: list[Element] = []
    for element in command.elements:
        if isinstance(element, ParamArg):
            value = element.value
            if value is not None:
                value = await _evaluate(ctx, registry, value, warnings)
            elements.append(ParamArg(element.name, value, element.column))
        else:
            elements.append(await _evaluate(ctx, registry, element, warnings))
    return Command(command.name, command.column, tuple(elements))


def _has_subexpression(element: Element | None) -> bool:
    if isinstance(element, SubExpression):
        return True
    if isinstance(element, ParamArg):
        return _has_subexpression(element.value)
    if isinstance(element, ListValue):
        return any(_has_subexpression(item) for item in element.items)
    if isinstance(element, HashValue):
        return any(_has_subexpression(item) for _, item in element.entries)
    return False


async def _evaluate(
    ctx: AdminContext, registry: Registry, value: Value, warnings: list[str]
) -> Value:
    if isinstance(value, ListValue):
        items = [await _evaluate(ctx, registry, item, warnings) for item in value.items]
        return ListValue(tuple(items), value.column)
    if isinstance(value, HashValue):
        entries = [(key, await _evaluate(ctx, registry, item, warnings))
                   for key, item in value.entries]
        return HashValue(tuple(entries), value.column)
    if not isinstance(value, SubExpression):
        return value
    outputs, _ = await _run_pipeline(ctx, registry, value.pipeline, warnings)
    # An object stands for its identity (Exchange binds objects to -Identity by it);
    # a SecureString carries its text marked secret.
    scalars = [
        Scalar(o, True, value.column) if isinstance(o, str)
        else Scalar(o.identity, True, value.column, secret=o.secret)
        for o in outputs
    ]
    if not scalars:
        return Variable("null", value.column)
    if len(scalars) == 1:
        return scalars[0]
    return ListValue(tuple(scalars), value.column)


async def _invoke(
    ctx: AdminContext,
    spec: CmdletSpec,
    args: dict[str, object],
    piped: list[Output],
    warnings: list[str],
) -> list[Output]:
    invocation = Invocation(ctx=ctx, cmdlet=spec, args=args, input=piped, warnings=warnings)
    try:
        return await spec.handler(invocation)
    except GatewayError as exc:  # the store refused: say which cmdlet it refused
        raise CmdletError(f"{spec.name}: {exc}") from None
