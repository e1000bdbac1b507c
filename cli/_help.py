"""How ``--help`` spells options and arguments: one way, in every command.

Typer's help gives every option a type column, flags included (``--overwrite <bool>``, ``--verbose -v <int>
[default: 0]``), and spells an argument one way in the usage line (``{RUN_DIR}...``, ``[runs]...``) and another
in its panel (``RUN_DIR <list[Path]>``). Here instead:

- a flag, and a count (``-v``, ``-vv``), shows no type; an option that takes a value shows its type or choices,
  a repeatable one the type of one value (``<path>``, not ``<list[Path]>``);
- an argument is its upper-case name (its metavar) everywhere, with ``...`` when it takes several and, in the
  usage line only, in brackets when it may be left out (``RUN_DIR...``, ``[RUN_DIR]...``); its type column shows
  its choices where it has some (``NAME <hgnc|hpo|go|go-annotations>``) and nothing otherwise.

Typer makes the parameter objects itself, with no class to pass, so :class:`HelpCommand` and :class:`HelpGroup`
(the ``cls`` of every lexprobe command and group; a test walks the app for it) give each parameter the subclass
below as the command lists its parameters (``get_params``), which is before help is written or arguments parsed.
With a Typer whose help does not call these methods the subclasses change nothing.
"""

from __future__ import annotations

import typing
from pathlib import PurePath
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["HelpArgument", "HelpCommand", "HelpGroup", "HelpOption"]


#: The bounds of a ``--seed`` (any value NumPy's legacy seeding takes): help shows ``<int>``, not the range.
SEED_RANGE = (0, 2**32 - 1)


class HelpOption(TyperOption):
    """An option whose help shows a type only where it takes a value, and a repeatable one the type of one value
    (``--calibration <path>``, not ``<list[Path]>``; its help says it is repeatable). A seed (an int in
    :data:`SEED_RANGE`) shows ``<int>`` without its range; a value outside it is still an error naming it."""

    def _is_seed(self) -> bool:
        return (self.min, self.max) == SEED_RANGE and self.type_descriptor.annotation is int

    def _get_number_range_help_str(self) -> str | None:
        return None if self._is_seed() else super()._get_number_range_help_str()

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        if self._is_seed():
            return "<int>"
        descriptor = self.type_descriptor
        if self.multiple and self.metavar is None and not descriptor.is_choice:
            element = (typing.get_args(descriptor.annotation) or (str,))[0]
            is_path = isinstance(element, type) and issubclass(element, PurePath)
            return f"<{'path' if is_path else self._bare_type(element)}>"
        return super().display_type_rich(ctx)


class HelpArgument(TyperArgument):
    """An argument spelt by its upper-case metavar in the usage line, its panel and its errors."""

    @property
    def display_name_raw(self) -> str:
        name = (self.metavar or self.name or "").upper()
        return f"{name}..." if self.nargs != 1 else name

    def _rich_display_name(self) -> str:
        return self.display_name_raw

    def _usage_display_name(self) -> str:
        return self.display_name_raw if self.required else f"[{self.display_name_raw}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        descriptor = getattr(self, "type_descriptor", None)
        return super().display_type_rich(ctx) if descriptor is not None and descriptor.is_choice else None


def _adopt(params: list[Any]) -> list[Any]:
    """``params`` with each Typer option and argument made a :class:`HelpOption` / :class:`HelpArgument`."""
    for param in params:
        if isinstance(param, TyperOption) and not isinstance(param, HelpOption):
            param.__class__ = HelpOption
        elif isinstance(param, TyperArgument) and not isinstance(param, HelpArgument):
            param.__class__ = HelpArgument
            # Typer's panel adds "..." to an argument without a metavar; this one's name carries it already
            param.metavar = (param.metavar or param.name or "").upper()
    return params


class HelpCommand(TyperCommand):
    """A command whose help spells its parameters as :mod:`lexprobe.cli._help` says."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _adopt(super().get_params(ctx))


class HelpGroup(TyperGroup):
    """A command group (``lexprobe``, ``lexprobe data``, ``lexprobe cache``) whose own options are spelt alike."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _adopt(super().get_params(ctx))
