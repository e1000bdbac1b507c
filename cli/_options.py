"""The one convention every ``lexprobe`` command holds to: option names, short flags, defaults and choices.

Every command is declared with :func:`command`, which adds the options all commands share (``-v/--verbose``,
``-q/--quiet``) and, for the commands that load a model, one set of model options (:class:`ModelOptions`),
defined once here so that every command spells, explains and checks them alike. :data:`CONVENTION` is the
table ``tests/cli/test_options.py`` walks the whole app against: a name in it means the same thing, with the
same short flag and default, in every command (or the command is listed with its own default and why).

The choices are enums, so that ``--help`` lists them and a wrong one is a usage error (exit 2). Their values
repeat the library's tuples (``lexprobe.models.DTYPES``...) instead of importing them, which would load torch
at every ``lexprobe --help``; a test checks that the two agree.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
from lexprobe.cli._common import handle_errors

from lexprobe.exceptions import did_you_mean


def _choices(name: str, values: tuple[str, ...], doc: str) -> Any:
    """A ``str`` enum of ``values`` (members named as the values, ``-`` as ``_``), for Typer to list and check."""
    kind = enum.Enum(name, {v.replace("-", "_"): v for v in values}, type=str, module=__name__)
    kind.__doc__ = doc
    return kind


DType = _choices("DType", ("auto", "float32", "bfloat16", "float16"), "Model precision (lexprobe.models.DTYPES).")
StorageDType = _choices("StorageDType", ("float32", "float16"), "Precision of embeddings on disk.")
Pool = _choices("Pool", ("mean", "last", "first"), "How an item's token states become one vector.")
Preprocess = _choices(
    "Preprocess", ("none", "center", "standardize", "clip"), "Preprocessing before a metric (align.PREPROCESSING)."
)
RetrievalMap = _choices("RetrievalMap", ("ridge", "procrustes", "none"), "The map fitted for cross-field retrieval.")
CILayers = _choices("CILayers", ("best", "all"), "Where CKA intervals are computed.")
Scheduler = _choices(
    "Scheduler",
    ("linear", "constant", "constant_with_warmup", "cosine"),
    "Learning-rate schedules (lexprobe.train.LR_SCHEDULERS, transformers' names).",
)
EvalSplit = _choices("EvalSplit", ("train", "withheld", "both"), "Which pairs evaluate scores.")
StudySize = _choices("StudySize", ("tiny", "small", "small-v1", "paper"), "lexprobe.study.SIZES.")
FetchSource = _choices(
    "FetchSource", ("hgnc", "hpo", "go", "go-annotations"), "Upstream releases (lexprobe.ontology.UPSTREAM_URLS)."
)


#: Comma-separated choices: option -> the values it takes (checked by :func:`csv_choices`).
METRICS = ("mknn", "retrieval", "cka", "dcka", "rsa")
STAGES = ("align", "lexicalization", "train", "evaluate", "fewshot", "correlate", "report")


def value(choice: Any) -> Any:
    """An enum member's value (Typer passes members), anything else as it is."""
    return choice.value if isinstance(choice, enum.Enum) else choice


def csv_choices(choices: tuple[str, ...], option: str) -> Callable[[str | None], str | None]:
    """A callback that checks a comma-separated option against ``choices`` (a usage error, exit 2)."""

    def check(text: str | None) -> str | None:
        if text is None:
            return None
        parts = [p.strip() for p in text.split(",") if p.strip()]
        unknown = [p for p in parts if p not in choices]
        if unknown or not parts:
            hints = "".join(f"; {p!r}{hint}" for p in unknown if (hint := did_you_mean(p, choices)))
            raise typer.BadParameter(
                f"expected some of {','.join(choices)} (comma-separated), got {text!r}{hints}", param_hint=option
            )
        return text

    return check


def ontology_option() -> Any:
    """``--ontology``, required, as every command that works on one ontology takes it."""
    return typer.Option(..., "--ontology", help="Built-in name (hgnc, hpo, go) or a file path.")


def task_option() -> Any:
    """``-t/--task``, required: a mapping task between two fields of the ontology."""
    return typer.Option(
        ...,
        "--task",
        "-t",
        help=(
            "Mapping task SOURCE-to-TARGET of two fields of the ontology, e.g. name-to-symbol, symbol-to-ncbi_gene, "
            "alias_symbol-to-symbol; `lexprobe data show ONTOLOGY` lists its fields and named tasks."
        ),
    )


_WAIT_HELP = "If another command is writing the same run folder, wait for it to finish instead of refusing."


def wait_option() -> Any:
    """``--wait``, as every command that writes a run folder takes it (see :func:`hold_run_dir`)."""
    return typer.Option(False, "--wait", help=_WAIT_HELP)


#: Options spelled and explained alike in every command that takes them, as ``name: Alias = default``
#: (an ``Annotated`` type: the option without its default, which the parameter gives).
OntologyOption = Annotated[str, ontology_option()]
TaskOption = Annotated[str, task_option()]
WaitOption = Annotated[bool, typer.Option("--wait", help=_WAIT_HELP)]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace a different run already in --out.")]
NoFiguresOption = Annotated[bool, typer.Option("--no-figures", help="Skip the figures.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the items, tokens and estimated time, then stop.")]


#: The locks the running command holds, released when it returns (see :func:`hold_run_dir`).
_HELD_LOCKS: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar("held_locks", default=None)


def hold_run_dir(directory: Any, *, wait: bool, option: str = "--out") -> None:
    """Lock the run folder ``directory`` until the command returns (``lexprobe.runs.run_lock``): a second command
    into it refuses in one line naming the process that holds it, or with ``wait`` waits for it. Call it after
    the checks that create nothing (``--dry-run`` returns before) and before the folder is read or written."""
    from lexprobe.runs import run_lock

    stack = _HELD_LOCKS.get()
    if stack is None:
        raise RuntimeError("hold_run_dir is called by a command declared with @command")
    stack.enter_context(run_lock(directory, wait=wait, option=option))


def layer_choice(text: str) -> str:
    """``--layer``: ``best`` or one layer index (a usage error otherwise)."""
    text = text.strip().lower()
    if text != "best":
        try:
            int(text)
        except ValueError:
            raise typer.BadParameter(f"expected best or a layer index, got {text!r}", param_hint="--layer") from None
    return text


# --- the table -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Convention:
    """What an option name means everywhere: its short flag, default and choices.

    ``defaults`` lists the commands that take another default, each with the reason (the test accepts no other
    difference). ``required_in`` lists the commands where the option is required (no default).
    """

    short: str | None = None
    default: Any = None
    choices: tuple[str, ...] | None = None
    defaults: dict[str, tuple[Any, str]] = dataclasses.field(default_factory=dict)
    required_in: tuple[str, ...] = ()
    meaning: str = ""


_CALIBRATION = "the features must be measured as the calibration set's were (100 + 100 pairs)"

CONVENTION: dict[str, Convention] = {
    # every command
    "--verbose": Convention("-v", 0, meaning="more log lines (-vv: also the libraries' own)"),
    "--quiet": Convention("-q", False, meaning="warnings and errors only, no progress"),
    # output
    "--out": Convention(
        "-o",
        None,
        required_in=("split", "embed", "train", "study"),
        defaults={
            "correlate": ("runs/correlate", "its inputs are runs of any models"),
            "popularity": ("runs/popularity", "its inputs are runs of any models"),
            "report": ("runs/report", "its inputs are runs of any models"),
            "data fetch": ("downloads", "downloads are not runs"),
        },
        meaning="the output folder (never a file); model-specific by default: runs/<model>/<stage>-<ontology>",
    ),
    "--overwrite": Convention(None, False, meaning="replace a different run already in --out"),
    "--wait": Convention(None, False, meaning="wait for another command writing the same run folder, not refuse"),
    "--json": Convention(None, False, meaning="print one strict JSON object on stdout (NaN as null), nothing else"),
    "--dry-run": Convention(None, False, meaning="print what the run would compute and cost, then stop"),
    "--no-figures": Convention(None, False),
    # what to work on
    "--ontology": Convention(
        None,
        None,
        required_in=("split", "embed", "align", "lexicalization", "train", "predict"),
        defaults={"study": ("hgnc,hpo,go", "a study spans ontologies")},
    ),
    "--task": Convention("-t", None, required_in=("split", "train", "predict")),
    "--field": Convention("-f", None, required_in=("embed",)),
    "--calibration": Convention("-c", [], meaning="a calibration set (a correlate or study output); repeatable"),
    "--limit": Convention(
        "-n",
        "2000",
        defaults={
            "embed": ("all", "embed extracts what it is asked for; --dry-run shows the cost"),
            "data show": ("10", "terms printed, not sampled"),
        },
        meaning="a popularity-balanced sample of N terms, or all",
    ),
    "--category": Convention(None, None, meaning="categories, comma-separated, or all"),
    "--seed": Convention(None, 0),
    "--bins": Convention(None, 20),
    "--per-bin": Convention(None, 30, defaults={"predict": (5, _CALIBRATION)}),
    "--layers": Convention(None, "all", meaning="layers to extract: all, or indices like 0,8,-1"),
    "--layer": Convention(None, "best", meaning="the one layer a per-item measure is reported at, or best"),
    "--pool": Convention(None, "mean", choices=tuple(p.value for p in Pool)),
    "--preprocess": Convention(None, "standardize", choices=tuple(p.value for p in Preprocess)),
    "--k": Convention(None, 10),
    "--permutations": Convention(None, 100),
    "--bootstrap": Convention(
        None,
        1000,
        defaults={
            "align": (100, "each resample recomputes CKA on every layer"),
            "predict": (200, "each resample refits the predictor"),
        },
    ),
    # the model
    "--model": Convention(
        "-m", "smollm2-135m", defaults={"cache clear": (None, "a filter: only the entries of this model")}
    ),
    "--revision": Convention(None, None),
    "--dtype": Convention(
        None,
        "auto",
        choices=tuple(d.value for d in DType),
        defaults={"evaluate": (None, "the run's own setting"), "exposure": (None, "the run's own setting")},
    ),
    "--device": Convention(None, None),
    "--device-map": Convention(None, None),
    "--load-in-4bit": Convention(None, False),
    "--trust-remote-code": Convention(None, False),
    "--batch-size": Convention(
        None,
        "auto",
        defaults={
            "train": (8, "examples per optimiser step: a training hyperparameter"),
            "evaluate": (32, "prompts per generation batch"),
            "exposure": (16, "candidate answers per forward pass"),
        },
    ),
}

#: Commands that load a model named on the command line, and those that load the models their input runs name.
MODEL_COMMANDS = ("embed", "align", "lexicalization", "train", "predict", "study")
RUN_MODEL_COMMANDS = ("evaluate", "correlate", "exposure")

# --- shared options ------------------------------------------------------------------------------------------

MODEL_PANEL = "Model"
OUTPUT_PANEL = "Output and logging"


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """How a command loads its model: which one (``model``, ``revision``) and how (the rest).

    ``load()`` hands them to :func:`lexprobe.models.load_model`; ``batch_size`` is "auto" or items per batch.
    """

    model: str | None = None
    revision: str | None = None
    dtype: str | None = "auto"
    device: str | None = None
    device_map: str | None = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    batch_size: str | int = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, str) and self.batch_size.isdigit():  # as the command line gives it
            object.__setattr__(self, "batch_size", int(self.batch_size))

    def load_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``load_model`` beyond the spec (only those set, so defaults stay the loader's)."""
        kwargs: dict[str, Any] = {"device": self.device, "dtype": self.dtype}
        if self.device_map is not None:
            kwargs["device_map"] = self.device_map
        if self.revision is not None:
            kwargs["revision"] = self.revision
        if self.load_in_4bit:
            kwargs["load_in_4bit"] = True
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        return kwargs

    def load(self, *, head: bool = False) -> Any:
        """Load ``self.model`` with these options."""
        from lexprobe.models import load_model

        return load_model(self.model, head=head, **self.load_kwargs())

    def resolved_dtype(self) -> str:
        """The precision ``auto`` means on this machine and device (``float32`` or ``bfloat16``...)."""
        from lexprobe.models import resolved_dtype

        return resolved_dtype(self.dtype, self.device)


def _batch_size(text: str) -> str:
    text = text.strip().lower()
    if text != "auto" and not (text.isdigit() and int(text) > 0):
        raise typer.BadParameter(f"expected auto or a positive number, got {text!r}", param_hint="--batch-size")
    return text


def _model_parameters(which: str, batch_default: Any, dtype_default: str | None) -> list[tuple[str, Any, Any]]:
    """(name, annotation, default) of the model options: ``which`` is "full" (model named here) or "runtime"."""
    full = which == "full"
    return [
        *(_which_model_parameters() if full else []),
        *_runtime_parameters(dtype_default),
        *(_loading_parameters() if full else []),
        _batch_size_parameter(batch_default),
    ]


def _which_model_parameters() -> list[tuple[str, Any, Any]]:
    """``--model`` and ``--revision``: which model a "full" command loads."""
    panel = {"rich_help_panel": MODEL_PANEL}
    return [
        (
            "model",
            str,
            typer.Option(
                CONVENTION["--model"].default,
                "--model",
                "-m",
                help="Named model (smollm2-135m, gemma3-270m), Hugging Face id, local directory or .gguf file.",
                **panel,
            ),
        ),
        (
            "revision",
            str | None,
            typer.Option(None, "--revision", help="Branch, tag or commit of a Hugging Face model id.", **panel),
        ),
    ]


def _runtime_parameters(dtype_default: str | None) -> list[tuple[str, Any, Any]]:
    """``--dtype``, ``--device`` and ``--device-map``: where and in what precision the model runs."""
    panel = {"rich_help_panel": MODEL_PANEL}
    dtype_help = "Precision: auto = bfloat16 where the CPU or GPU computes it natively, else float32."
    if dtype_default is None:
        dtype_help += " Default: the setting the run recorded."
    default = None if dtype_default is None else DType(dtype_default)
    return [
        ("dtype", DType | None, typer.Option(default, "--dtype", help=dtype_help, **panel)),
        (
            "device",
            str | None,
            typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: CUDA when present, else CPU).", **panel),
        ),
        (
            "device_map",
            str | None,
            typer.Option(
                None,
                "--device-map",
                help="auto spreads a model too large for one GPU over the GPUs and CPU (accelerate).",
                **panel,
            ),
        ),
    ]


def _loading_parameters() -> list[tuple[str, Any, Any]]:
    """``--load-in-4bit`` and ``--trust-remote-code``: how a "full" command loads the weights."""
    panel = {"rich_help_panel": MODEL_PANEL}
    return [
        (
            "load_in_4bit",
            bool,
            typer.Option(
                False,
                "--load-in-4bit",
                help='4-bit NF4 weights (QLoRA with train); CUDA and `pip install "lexprobe\\[quantization]"`.',
                **panel,
            ),
        ),
        (
            "trust_remote_code",
            bool,
            typer.Option(
                False,
                "--trust-remote-code",
                help="Run Python code from the model's repository (off unless given).",
                **panel,
            ),
        ),
    ]


def _batch_size_parameter(batch_default: Any) -> tuple[str, Any, Any]:
    """``--batch-size``: a plain number option when the default is an int, else a number or auto."""
    panel = {"rich_help_panel": MODEL_PANEL}
    if isinstance(batch_default, int):
        return ("batch_size", int, typer.Option(batch_default, "--batch-size", min=1, help="Items per batch.", **panel))
    return (
        "batch_size",
        str,
        typer.Option(
            batch_default,
            "--batch-size",
            callback=_batch_size,
            help="Items per forward pass, or auto (as many as fit).",
            **panel,
        ),
    )


def _common_parameters() -> list[tuple[str, Any, Any]]:
    panel = {"rich_help_panel": OUTPUT_PANEL}
    return [
        (
            "verbose",
            int,
            typer.Option(
                0,
                "--verbose",
                "-v",
                count=True,
                show_default=False,
                help="More log lines: -v, or -vv for the libraries' own too.",
                **panel,
            ),
        ),
        ("quiet", bool, typer.Option(False, "--quiet", "-q", help="Warnings and errors only; no progress.", **panel)),
    ]


def command(
    *, model: str | None = None, batch_size: Any = "auto", dtype: str | None = "auto"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a CLI command: the shared options, logging set up, and errors turned into one line.

    Parameters
    ----------
    model : {None, "full", "runtime"}
        ``"full"``: the command loads a model named on the command line (``--model``, ``--revision``, how to load
        it); ``"runtime"``: the models come from the input runs, only how to run them is asked; ``None``: none.
        The function then receives them as one ``model_options: ModelOptions`` argument.
    batch_size : "auto" or int
        The default of ``--batch-size`` (an int makes it a plain number option).
    dtype : "auto" or None
        The default of ``--dtype``; None: the precision the input run recorded.

    The function receives ``verbose`` and ``quiet`` too if its signature names them.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        inner = handle_errors(func)
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)  # Annotated options kept
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
        own = [p for p in own if p.name not in ("model_options", "verbose", "quiet")]
        model_params = _model_parameters(model, batch_size, dtype) if model else []
        extra = model_params + _common_parameters()
        taken = {p.name for p in own}
        clash = taken & {name for name, _, _ in extra}
        if clash:
            raise TypeError(f"{func.__name__} declares shared options itself: {sorted(clash)}")
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, annotation, default in extra
        ]
        model_names = [name for name, _, _ in model_params]
        wants = set(signature.parameters)

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            verbose, quiet = kwargs.pop("verbose", 0), kwargs.pop("quiet", False)
            _setup_logging(verbose, quiet)
            if model:
                chosen = {name: value(kwargs.pop(name)) for name in model_names}
                kwargs["model_options"] = ModelOptions(**chosen)
            if "verbose" in wants:
                kwargs["verbose"] = verbose
            if "quiet" in wants:
                kwargs["quiet"] = quiet
            with contextlib.ExitStack() as stack:  # the run folders the command locks, released as it ends
                token = _HELD_LOCKS.set(stack)
                try:
                    return inner(**{k: value(v) for k, v in kwargs.items()})
                finally:
                    _HELD_LOCKS.reset(token)

        positional = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY]
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*positional, *keyword, *added], return_annotation=None
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        del wrapper.__wrapped__  # type: ignore[attr-defined]  # inspect and Typer read __signature__, not func
        return wrapper

    return decorate


def _setup_logging(verbose: int, quiet: bool) -> None:
    from lexprobe.cli._progress import setup_logging

    setup_logging(verbose, quiet)
