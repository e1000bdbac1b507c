"""What ``--help`` shows (issue 33, item 9): no type on a flag or a count, one spelling of each argument (its
upper-case name, in the usage line, its panel and its errors), the choices of an argument that has some."""

from __future__ import annotations

import re

import pytest
import typer
from lexprobe.cli._help import HelpArgument, HelpCommand, HelpGroup
from lexprobe.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _walk() -> tuple[dict[str, object], dict[str, object]]:
    """(commands, groups) of the whole app, by their path (``"data fetch"``; the root group is ``""``)."""
    commands: dict[str, object] = {}
    groups: dict[str, object] = {}

    def walk(node, path: tuple[str, ...]) -> None:
        if hasattr(node, "commands"):
            groups[" ".join(path)] = node
            for name, sub in node.commands.items():
                walk(sub, (*path, name))
        else:
            commands[" ".join(path)] = node

    walk(typer.main.get_command(app), ())
    return commands, groups


COMMANDS, GROUPS = _walk()

#: The argument each command takes, as its usage line spells it.
ARGUMENTS = {
    "evaluate": "RUN_DIR",
    "report": "RUN_DIR...",
    "correlate": "[RUN_DIR...]",  # may be left out: --items instead
    "popularity": "RUN_DIR...",
    "exposure": "RUN_DIR...",
    "spread": "STUDY_DIR...",
    "data show": "ONTOLOGY",
    "data fetch": "NAME",
}


def _help(path: str) -> str:
    result = runner.invoke(app, [*path.split(), "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_and_group_spells_its_help_the_lexprobe_way() -> None:
    assert {"align", "report", "data fetch", "cache clear"} <= set(COMMANDS)
    assert {"", "data", "cache"} == set(GROUPS)
    assert all(isinstance(c, HelpCommand) for c in COMMANDS.values()), [n for n, c in COMMANDS.items()]
    assert all(isinstance(g, HelpGroup) for g in GROUPS.values())


@pytest.mark.parametrize("path", sorted({*COMMANDS, *GROUPS}))
def test_a_flag_or_a_count_shows_no_type(path: str) -> None:
    text = _help(path)
    assert "<bool>" not in text
    assert "<list[" not in text  # a repeatable option shows the type of one value, an argument its name
    assert "[default: 0]" not in next(line for line in text.splitlines() if "--help" in line)
    if path in COMMANDS:
        verbose = next(line for line in text.splitlines() if "--verbose" in line)
        assert "-v, or -vv" in verbose and "<int>" not in verbose and "default" not in verbose


@pytest.mark.parametrize("path", sorted(ARGUMENTS))
def test_an_argument_is_spelt_one_way_in_usage_panel_and_errors(path: str) -> None:
    spelt = ARGUMENTS[path]
    name = spelt.strip("[]")
    text = _help(path)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert usage.split("[OPTIONS]")[1].split() == [spelt]
    assert re.search(rf"│ [* ] +{re.escape(name)} ", text), text  # the Arguments panel
    assert "{" not in usage and "list[Path]" not in text
    if not spelt.startswith("["):
        result = runner.invoke(app, path.split(), env=WIDE)
        assert result.exit_code == 2 and f"Missing argument '{name}'" in result.output


def test_every_argument_is_named_in_capitals() -> None:
    for path, command in COMMANDS.items():
        for param in command.get_params(typer.Context(command)):
            if getattr(param, "param_type_name", "") == "argument":
                assert isinstance(param, HelpArgument)
                assert re.fullmatch(r"[A-Z][A-Z_]*(\.\.\.)?", param.display_name_raw), (path, param.display_name_raw)
                assert path in ARGUMENTS, f"{path}: add its argument to ARGUMENTS"


def test_options_that_take_a_value_still_show_their_type_or_choices() -> None:
    text = " ".join(_help("align").split())
    assert "--out -o <path>" in text and "--k <int range>" in text
    assert "--preprocess <none|center|standardize|clip>" in text
    assert "--calibration -c <path>" in " ".join(_help("predict").split())


def test_a_seed_shows_int_without_its_range_and_still_refuses_one_outside_it() -> None:
    with_seed = [path for path in COMMANDS if re.search(r"│ +--seed ", _help(path))]
    assert {"align", "split", "train", "study"} <= set(with_seed)
    for path in with_seed:
        line = next(" ".join(line.split()) for line in _help(path).splitlines() if re.search(r"│ +--seed ", line))
        assert "--seed <int> " in line and "range" not in line and "4294967295" not in line, (path, line)
    result = runner.invoke(app, ["align", "--ontology", "hgnc", "--seed", str(2**32)], env=WIDE)
    assert result.exit_code == 2 and "4294967295" in result.output
