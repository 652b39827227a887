"""One parameter of the call and fire forms: its input, its type, choices and default, its error.

    row = FormField(field)                 # a busctl._types.Field
    given, value = row.read(index=1)       # (False, None): left empty, so left out
    row.show_error("Input should be 'heat' or 'off'")
    row.clear_error()

A parameter whose values are a list (an enum, a ``Literal``, a boolean) is a
``Select`` of them, so no other value can be chosen; any other is an
``Input``, read as the REPL reads a value (``busctl._args``: JSON or Python
literals, never ``eval``), text as typed for a string. The line under it
says the type, the choices and the default; an error the bus gave for the
value takes its place until the value changes.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static

from busctl._args import ArgumentError, parse_args, parse_value, split_line
from busctl._types import MISSING, Field, choice_text
from busctl.render.text import visible

__all__ = ["FormField", "arguments", "field_of", "hint", "read_form"]

_NULL = "\x00null"  # the Select value standing for JSON null (None is no Select value)
_TEXT_TYPES = ("string", "null")


class FormField(Vertical):
    """The input of one parameter, with its type, choices, default and error.

    Args:
        field: the parameter (from the bus's schema, or from ``inspect()``).
        text: what to show in an ``Input`` (the default, or what was typed).
    """

    DEFAULT_CSS: ClassVar[str] = """
    FormField { height: auto; margin-top: 1; }
    FormField > .field-line { height: 1; }
    FormField > .field-line > Label { width: 22; }
    FormField > .field-line > Input { border: none; height: 1; padding: 0 1 0 0; width: 1fr; }
    FormField > .field-line > Select { width: 1fr; }
    FormField > .field-hint { color: $text-muted; padding-left: 22; height: auto; }
    FormField > .field-error { color: $error; text-style: bold; padding-left: 22;
                               height: auto; display: none; }
    FormField.-invalid > .field-error { display: block; }
    FormField.-invalid > .field-hint { display: none; }
    FormField.-invalid > .field-line > Input { background: $error 20%; }
    """

    def __init__(self, field: Field, *, text: str | None = None) -> None:
        super().__init__(classes="form-field")
        self.field = field
        self.text = text if text is not None else field.default_text()
        self.choices = _choices(field)

    @property
    def widget_id(self) -> str:
        """The id of its input: ``param-NAME``."""
        return f"param-{self.field.name}"

    def compose(self) -> ComposeResult:
        field = self.field
        with Horizontal(classes="field-line"):
            yield Label(_label(field), markup=False)
            if self.choices:
                options = [(Text(label), value) for label, value in self.choices]
                chosen = _chosen(field, self.choices)
                yield Select(
                    options,
                    prompt="(left out)" if not field.required else "choose…",
                    allow_blank=True,
                    value=chosen,
                    id=self.widget_id,
                    compact=True,
                    tooltip=Text(hint(field)),
                )
            else:
                yield Input(
                    self.text,
                    placeholder=visible(field.type if field.type != "any" else "any JSON value"),
                    id=self.widget_id,
                    tooltip=Text(hint(field)),  # list[str] is not markup
                )
        yield Static(Text(hint(field)), classes="field-hint")
        yield Static("", classes="field-error")

    def focus_input(self) -> None:
        """Put the focus on its input."""
        self.query_one(f"#{self.widget_id}").focus()

    def current_text(self) -> str:
        """What an ``Input`` holds (``""`` for a ``Select``), to keep across a rebuild."""
        found = self.query(f"Input#{self.widget_id}")
        return found.first(Input).value if found else ""

    def read(self, index: int) -> tuple[bool, Any]:
        """Whether a value is given, and the value (JSON data).

        Args:
            index: the field's number in the form (from 1), for error messages.

        Raises:
            ArgumentError: the text is not a value (``[1,`` say).
        """
        if self.choices:
            select = self.query_one(f"#{self.widget_id}", Select)
            if select.is_blank():
                return False, None
            value = select.value
            return True, None if value == _NULL else value
        text = self.query_one(f"#{self.widget_id}", Input).value
        if not text.strip():
            return False, None
        field = self.field
        if field.kind == "var_positional":
            return True, parse_args(split_line(text))[0]
        if field.kind == "var_keyword":
            return True, parse_args(split_line(text))[1]
        stripped = text.strip()
        if _takes_text(field) and stripped[0] not in "\"'":
            if field.nullable and stripped == "null":
                return True, None
            return True, text
        return True, parse_value(text, index=index)

    def show_error(self, message: str) -> None:
        """Say under the input what is wrong with its value."""
        self.query_one(".field-error", Static).update(Text(visible(message)))
        self.add_class("-invalid")

    def clear_error(self) -> None:
        """The value changed: the error no longer applies."""
        if self.has_class("-invalid"):
            self.remove_class("-invalid")
            self.query_one(".field-error", Static).update("")

    @property
    def invalid(self) -> bool:
        """Whether an error is shown."""
        return self.has_class("-invalid")

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self) -> None:
        self.clear_error()


def hint(field: Field) -> str:
    """The line under an input: type, choices, default, required."""
    parts = [field.type if field.type != "any" else "any JSON value"]
    if field.kind == "var_positional":
        parts = [f"*{parts[0]}: values separated by spaces"]
    elif field.kind == "var_keyword":
        parts = [f"**{parts[0]}: key=value …"]
    listed = " | ".join(choice_text(v, quote=True) for v in field.choices)
    if field.choices and listed not in field.type:
        parts.append("one of " + ", ".join(choice_text(v) for v in field.choices))
    if field.required:
        parts.append("required")
    elif field.has_default:
        parts.append(f"default {field.default_text()}")
    elif not field.variadic:
        parts.append("optional")
    if field.description:
        parts.append(field.description)
    return visible(" · ".join(parts))


def _label(field: Field) -> str:
    stars = {"var_positional": "*", "var_keyword": "**"}.get(field.kind, "")
    text = visible(f"{stars}{field.name}")
    if len(text) > 21:
        text = text[:20] + "…"
    return text


def _choices(field: Field) -> list[tuple[str, Any]]:
    """The Select's options: each value as typed, and ``null`` where it is one."""
    values: list[Any] = list(field.choices)
    if not values and field.type in ("boolean", "boolean | null"):
        values = [True, False]
    if not values or field.variadic:
        return []
    options = [(choice_text(v), v) for v in values]
    if field.nullable:
        options.append(("null", _NULL))
    return options


def _chosen(field: Field, options: list[tuple[str, Any]]) -> Any:
    if not field.has_default:
        return Select.NULL
    wanted = _NULL if field.default is None else field.default
    for _, value in options:
        if value == wanted and type(value) is type(wanted):
            return value
    return Select.NULL


def _takes_text(field: Field) -> bool:
    """Whether every type the field takes is text (a bare word is then the string itself)."""
    kinds = [part.strip() for part in field.type.split("|")]
    return any(k.startswith("string") or k == "str" for k in kinds) and all(
        k.startswith(_TEXT_TYPES) or k in ("str", "None") for k in kinds
    )


# -- a form's values as arguments ----------------------------------------------------


def read_form(
    params: list[dict[str, Any]], values: dict[str, str], extra: str = ""
) -> tuple[list[Any], dict[str, Any]]:
    """The ``args`` and ``kwargs`` a filled-in form stands for (text fields only).

    Args:
        params: the ``params`` of an ``inspect()`` entry.
        values: the text typed for each parameter, by name.
        extra: free arguments (``3 room=hall``) for events without a signature.

    A field left empty is left out. Whether the arguments bind to the
    signature (a required one missing, say) is the bus's to check: it answers
    with the signature, and the form shows that answer.

    Raises:
        ArgumentError: a value cannot be read.
    """
    fields = [field_of(param) for param in params]
    given: list[tuple[Field, Any]] = []
    for index, found in enumerate(fields, start=1):
        text = values.get(found.name, "")
        if text.strip():
            given.append((found, _read_text(found, text, index)))
    return arguments(given, extra)


def _read_text(found: Field, text: str, index: int) -> Any:
    if found.kind == "var_positional":
        return parse_args(split_line(text))[0]
    if found.kind == "var_keyword":
        return parse_args(split_line(text))[1]
    if found.type in ("str", "str | None") and text.strip()[0] not in "\"'":
        return text
    return parse_value(text, index=index)


def arguments(given: list[tuple[Field, Any]], extra: str = "") -> tuple[list[Any], dict[str, Any]]:
    """``args`` and ``kwargs`` from the values given, in the fields' order.

    A positional-only parameter goes by position; once ``*args`` has values,
    the parameters before it go by position too (Python allows nothing else).

    Raises:
        ArgumentError: ``extra`` cannot be read.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    spread = any(f.kind == "var_positional" and v for f, v in given)
    for found, value in given:
        if found.kind == "var_positional":
            args.extend(value)
        elif found.kind == "var_keyword":
            kwargs.update(value)
        elif found.kind == "positional" or (spread and found.kind == "positional_or_keyword"):
            args.append(value)
        else:
            kwargs[found.name] = value
    if extra.strip():
        more_args, more_kwargs = parse_args(split_line(extra))
        args.extend(more_args)
        kwargs.update(more_kwargs)
    return args, kwargs


def field_of(param: dict[str, Any]) -> Field:
    """A parameter of ``inspect()`` as a form field (a bus that sent no schema for it)."""
    default_text = param.get("default")
    default: Any = MISSING
    if isinstance(default_text, str) and not param.get("required"):
        with contextlib.suppress(ArgumentError):
            default = parse_value(default_text)
    return Field(
        name=str(param["name"]),
        kind=str(param.get("kind") or "positional_or_keyword"),
        type=str(param.get("annotation") or "any"),
        default=default,
        required=bool(param.get("required")),
    )
