"""One convention for every command: walk the whole CLI and check each option against ``cli/_options.CONVENTION``.

A new command or option that spells a shared option differently, gives it another short flag or default, or
takes a choice as free text fails here, so the convention cannot drift one command at a time.
"""

from __future__ import annotations

import enum
import typing
from pathlib import Path

import click
import pytest
import typer
from lexprobe.cli import _options as opts
from lexprobe.cli.main import app

#: Names the convention replaced: no command may take them again.
RETIRED = {"--to": "--out", "--run": "a RUN_DIR argument", "--split-dir": "--from-split"}

#: Commands that write a run folder (or files) and so take ``-o/--out``.
WRITERS = (
    "split",
    "embed",
    "align",
    "lexicalization",
    "train",
    "report",
    "correlate",
    "predict",
    "popularity",
    "study",
    "data fetch",
)

MODEL_OPTIONS = (
    "--model",
    "--revision",
    "--dtype",
    "--device",
    "--device-map",
    "--load-in-4bit",
    "--trust-remote-code",
    "--batch-size",
)
RUNTIME_OPTIONS = ("--dtype", "--device", "--device-map", "--batch-size")


def _commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group) or hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


def _options(command: click.Command) -> dict[str, click.Option]:
    out = {}
    for param in command.params:
        if isinstance(param, click.Option) or getattr(param, "param_type_name", "") == "option":
            longs = [o for o in param.opts if o.startswith("--")]
            out[longs[0]] = param
    return out


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _choices(param) -> tuple[str, ...] | None:
    """The values an option's enum type allows (None: free text)."""
    annotation = param.type_descriptor.annotation
    members = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = members[0]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return tuple(m.value for m in kind)
    return None


def test_the_walk_finds_every_command():
    assert {"align", "embed", "train", "evaluate", "predict", "study", "report", "data show", "cache list"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_shared_options_mean_the_same_everywhere(name):
    command = COMMANDS[name]
    for long, param in _options(command).items():
        if long == "--help":
            continue
        assert long not in RETIRED, f"{name}: {long} is now {RETIRED[long]}"
        shorts = sorted(o for o in [*param.opts, *param.secondary_opts] if not o.startswith("--"))
        rule = opts.CONVENTION.get(long)
        if rule is None:
            # a command's own option: no ad-hoc short flag (short flags are the convention's alone)
            assert not shorts, f"{name} {long}: short flag {shorts} is not in the convention"
            continue
        assert shorts == ([rule.short] if rule.short else []), f"{name} {long}: short flags {shorts}"
        if name in rule.required_in:
            assert param.required, f"{name} {long} should be required"
            continue
        expected = rule.defaults[name][0] if name in rule.defaults else rule.default
        assert not param.required, f"{name} {long} should not be required"
        assert _plain(param.default) == _plain(expected), f"{name} {long}: default {param.default!r}"
        if rule.choices is not None:
            assert _choices(param) == rule.choices, f"{name} {long} takes free text, not these choices"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_takes_verbose_and_quiet(name):
    options = _options(COMMANDS[name])
    assert "--verbose" in options and "--quiet" in options


@pytest.mark.parametrize("name", WRITERS)
def test_writers_take_out_as_o(name):
    out = _options(COMMANDS[name])["--out"]
    assert "-o" in out.opts
    assert "folder" in (out.help or "").lower(), f"{name} --out must say it is a folder"


@pytest.mark.parametrize("name", [*(w for w in WRITERS if w != "data fetch"), "evaluate"])
def test_commands_that_write_a_run_folder_take_wait(name):
    """A run folder is locked while a command writes it; each such command can wait for another instead."""
    wait = _options(COMMANDS[name]).get("--wait")
    assert wait is not None and wait.is_flag and wait.default is False, name


def test_o_means_out_and_nothing_else():
    for name, command in COMMANDS.items():
        for long, param in _options(command).items():
            if "-o" in param.opts:
                assert long == "--out", f"{name}: -o is {long}"


@pytest.mark.parametrize("name", opts.MODEL_COMMANDS)
def test_model_commands_take_the_whole_model_set(name):
    options = _options(COMMANDS[name])
    assert set(MODEL_OPTIONS) <= set(options), set(MODEL_OPTIONS) - set(options)
    panels = {getattr(options[o], "rich_help_panel", None) for o in MODEL_OPTIONS}
    assert panels == {opts.MODEL_PANEL}


@pytest.mark.parametrize("name", opts.RUN_MODEL_COMMANDS)
def test_commands_on_runs_take_how_to_run_the_model(name):
    options = _options(COMMANDS[name])
    assert set(RUNTIME_OPTIONS) <= set(options)
    assert "--model" not in options  # the model is the one the runs name


def test_no_other_command_takes_model_options():
    for name, command in COMMANDS.items():
        if name in (*opts.MODEL_COMMANDS, *opts.RUN_MODEL_COMMANDS):
            continue
        taken = set(MODEL_OPTIONS) & set(_options(command))
        if name in opts.CONVENTION["--model"].defaults:  # listed with its own meaning (a filter)
            taken.discard("--model")
        assert not taken, name


def test_category_is_comma_separated_everywhere():
    for name, command in COMMANDS.items():
        option = _options(command).get("--category")
        if option is not None:
            assert not option.multiple, f"{name} --category is repeatable"


def test_choices_match_the_library():
    from lexprobe.align import PREPROCESSING
    from lexprobe.align._null import METRIC_NAMES
    from lexprobe.models import DTYPES
    from lexprobe.study import SIZES, STAGES
    from lexprobe.train import SPLITS
    from lexprobe.train._config import LR_SCHEDULERS

    assert tuple(d.value for d in opts.DType) == DTYPES
    assert tuple(p.value for p in opts.Preprocess) == PREPROCESSING
    assert opts.METRICS == METRIC_NAMES
    assert opts.STAGES == STAGES
    assert tuple(s.value for s in opts.StudySize) == tuple(SIZES)
    assert tuple(s.value for s in opts.Scheduler) == LR_SCHEDULERS
    assert tuple(s.value for s in opts.EvalSplit) == (*SPLITS, "both")

    from lexprobe.ontology import UPSTREAM_URLS

    assert tuple(s.value for s in opts.FetchSource) == tuple(UPSTREAM_URLS)

    from lexprobe.cli.cache import KINDS as CLI_KINDS

    from lexprobe.cache import KINDS

    assert CLI_KINDS == KINDS


def test_a_wrong_choice_is_a_usage_error_that_lists_the_choices():
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["align", "--ontology", "hgnc", "--preprocess", "whiten"])
    assert result.exit_code == 2
    assert "standardize" in result.output
    result = CliRunner().invoke(app, ["align", "--ontology", "hgnc", "--metrics", "mknn,cosine"])
    assert result.exit_code == 2
    assert "dcka" in result.output
    result = CliRunner().invoke(app, ["align", "--ontology", "hgnc", "--metrics", "mknn,dcak"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "'dcak' (did you mean 'dcka'?)" in result.output and "'mknn' (did" not in result.output


def test_help_lists_the_choices():
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["align", "--help"], env={"COLUMNS": "200"})
    assert "none|center|standardize|clip" in result.output
    assert "auto|float32|bfloat16|float16" in result.output


def test_the_defaults_the_training_guide_states_are_the_real_ones():
    """docs/training.md lists train's and evaluate's options with their defaults in brackets."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text(encoding="utf-8")
    train_part = text[text.index("Options of `train`") : text.index("`evaluate` takes the run folder")]
    evaluate_part = text[text.index("`evaluate` takes the run folder") : text.index("## Precision")]
    checked = 0
    for name, part in (("train", train_part), ("evaluate", evaluate_part)):
        options = _options(COMMANDS[name])
        for option, stated in re.findall(r"`(--[a-z0-9-]+)` \[([^\]]+)\]", " ".join(part.split())):
            real = _plain(options[option].default)
            try:
                assert float(stated) == float(real), f"{name} {option}: docs say {stated}, the CLI {real}"
            except (TypeError, ValueError):
                assert stated == str(real), f"{name} {option}: docs say {stated}, the CLI {real}"
            checked += 1
    assert checked >= 15
