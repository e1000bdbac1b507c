"""Hostile input and a hostile file system: each ends in one `error:` line and a non-zero exit, never a traceback.

An output path that cannot be written is told before any computation; any other OS error (a full disk, a
read-only file system, a missing permission) still comes out as one line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from _cli import one_error_line
from lexprobe.cli.main import app
from typer.testing import CliRunner

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
runner = CliRunner()

# Each command with the least input that reaches its output check; {out} is the output path under test.
COMMANDS = {
    "split": ["split", "--ontology", "hpo", "--task", "name-to-id", "--out", "{out}"],
    "embed": ["embed", "--ontology", "hpo", "--field", "name", "--out", "{out}"],
    "align": ["align", "--ontology", "hpo", "--limit", "10", "--out", "{out}"],
    "lexicalization": ["lexicalization", "--ontology", "hpo", "--out", "{out}"],
    "train": ["train", "--ontology", "hgnc", "--task", "name-to-symbol", "--out", "{out}"],
    "correlate": ["correlate", "{tmp}", "--out", "{out}"],
    "predict": ["predict", "--ontology", "hgnc", "--task", "name-to-symbol", "--out", "{out}"],
    "study": ["study", "--size", "tiny", "--out", "{out}"],
    # `data fetch --to` checks its folder itself (tests/cli/test_data_cli.py)
    "report": ["report", "{tmp}", "--out", "{out}/r.html"],
}


def _invoke(name: str, out: Path, tmp: Path):
    args = [a.replace("{out}", str(out)).replace("{tmp}", str(tmp)) for a in COMMANDS[name]]
    return runner.invoke(app, args)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_output_path_that_is_a_file_is_one_line_before_any_work(tmp_path: Path, name: str) -> None:
    in_the_way = tmp_path / "file"
    in_the_way.write_text("keep me\n")
    result = _invoke(name, in_the_way, tmp_path)
    assert result.exit_code == 1, result.output
    line = one_error_line(result.output)
    assert str(in_the_way) in line and ("is a file" in line or "not a directory" in line), line
    assert in_the_way.read_text() == "keep me\n"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_output_path_under_a_file_is_one_line_before_any_work(tmp_path: Path, name: str) -> None:
    in_the_way = tmp_path / "file"
    in_the_way.write_text("keep me\n")
    result = _invoke(name, in_the_way / "sub" / "out", tmp_path)
    assert result.exit_code == 1, result.output
    line = one_error_line(result.output)
    assert f"under {in_the_way}, which is a file" in line, line


def test_a_report_out_that_is_a_file_or_whose_page_is_a_folder_is_one_line(tmp_path: Path) -> None:
    run = str(RESULTS / "align-hgnc")
    a_file = tmp_path / "page.html"
    a_file.write_text("x")
    result = runner.invoke(app, ["report", run, "--out", str(a_file)])
    assert result.exit_code == 1
    assert "is a file, not a directory" in one_error_line(result.output)
    (tmp_path / "out" / "report.html").mkdir(parents=True)
    result = runner.invoke(app, ["report", run, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "is a directory; give a file name" in one_error_line(result.output)


@pytest.mark.parametrize("name", ["embed", "align", "split", "correlate", "report"])
def test_a_read_only_file_system_is_one_line_before_any_work(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    result = _invoke(name, tmp_path / "out", tmp_path)
    assert result.exit_code == 1, result.output
    assert "cannot be written (read-only file system)" in one_error_line(result.output)
    assert not (tmp_path / "out").exists()


def test_a_folder_the_user_may_not_write_is_one_line(tmp_path: Path) -> None:
    """A real refusal: even root cannot make files in /sys (chmod does not stop root)."""
    target = Path("/sys/lexprobe-test-out")
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _can_create_in(Path("/sys")):
        pytest.skip("no folder here refuses new files")
    result = _invoke("embed", target, tmp_path)
    assert result.exit_code == 1
    assert "cannot be written" in one_error_line(result.output)


def _can_create_in(folder: Path) -> bool:
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/x/manifest.json"), "no space left on device: /x/"),
        (OSError(errno.EROFS, "Read-only file system", "/x/manifest.json"), "read-only file system: /x/"),
        (PermissionError(errno.EACCES, "Permission denied", "/x/manifest.json"), "permission denied: /x/"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/x/manifest.json"), "is a directory: /x/"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/x/manifest.json"), "not a directory: /x/"),
        (FileExistsError(errno.EEXIST, "File exists", "/x/a", None, "/x/b"), "file exists: /x/a -> /x/b"),
        (OSError("something odd"), "something odd"),
    ],
)
def test_an_os_error_while_writing_is_one_line(
    tmp_path: Path, error: OSError, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lexprobe.runs

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(lexprobe.runs, "write_manifest", fails)
    result = _invoke("split", tmp_path / "out", tmp_path)
    assert result.exit_code == 1
    assert message in one_error_line(result.output)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (
            ["train", "--ontology", "hgnc", "-t", "name-to-symbol", "--out", "{tmp}/r", "--max-steps", "0"],
            "--max-steps",
        ),
        (
            ["train", "--ontology", "hgnc", "-t", "name-to-symbol", "--out", "{tmp}/r", "--max-steps", "-5"],
            "--max-steps",
        ),
        (["evaluate", "{tmp}", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["evaluate", "{tmp}", "--max-new-tokens", "-3"], "--max-new-tokens"),
        (["align", "--ontology", "hpo", "--permutations", "1000000000000", "--out", "{tmp}/a"], "--permutations"),
        (["align", "--ontology", "hpo", "--permutations", "-1", "--out", "{tmp}/a"], "--permutations"),
        (["align", "--ontology", "hpo", "--bootstrap", "1000000000000", "--out", "{tmp}/a"], "--bootstrap"),
        (["correlate", "{tmp}", "--permutations", "1000000000000", "--out", "{tmp}/c"], "--permutations"),
        (["correlate", "{tmp}", "--permutations", "1", "--out", "{tmp}/c"], "--permutations"),
        (["correlate", "{tmp}", "--bootstrap", "1000000000000", "--out", "{tmp}/c"], "--bootstrap"),
        (["predict", "--ontology", "hgnc", "-t", "name-to-symbol", "--bootstrap", "1000000000000"], "--bootstrap"),
    ],
)
def test_out_of_range_numbers_are_usage_errors_naming_the_option(tmp_path: Path, args: list[str], option: str) -> None:
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output
    assert "--lr" not in result.output


def test_train_config_names_max_steps() -> None:
    from lexprobe.exceptions import TrainingError
    from lexprobe.train import TrainConfig

    with pytest.raises(TrainingError, match="max_steps"):
        TrainConfig(ontology="hgnc", task="name-to-symbol", max_steps=0)


# --- damaged models -------------------------------------------------------------------------------------------


def _embed_with(model: Path | str, tmp_path: Path, *extra: str):
    return runner.invoke(
        app,
        ["embed", "--ontology", "hpo", "-f", "name", "-n", "3", "-m", str(model), *extra, "--out", str(tmp_path / "e")],
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x8b\x00garbage" * 8, "does not start with the GGUF magic bytes"),
        (b"GGUF\x03\x00\x00\x00", "unpack"),  # a header cut short
    ],
)
def test_a_damaged_gguf_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(content)
    result = _embed_with(gguf, tmp_path)
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert f"cannot read the GGUF file {gguf}" in line and reason in line and "download it again" in line
    assert not [p for p in (tmp_path / "cache" / "models").iterdir() if p.is_dir()]  # no half conversion kept


@pytest.mark.slow
def test_a_truncated_copy_of_the_real_gguf_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lexprobe.models import resolve_model_spec

    monkeypatch.setenv("LEXPROBE_CACHE", str(tmp_path / "cache"))
    real = Path(resolve_model_spec("smollm2-135m").location)
    gguf = tmp_path / "cut.gguf"
    with open(real, "rb") as fh:
        gguf.write_bytes(fh.read(2_000_000))  # metadata whole, tensors cut off
    result = _embed_with(gguf, tmp_path)
    assert result.exit_code == 1
    assert f"cannot read the GGUF file {gguf}" in one_error_line(result.output)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (b"\x8b\x1f\x00\xff binary", "config.json is not a text (JSON) file"),
        (b'{"model_type": ', "config.json' is not a valid JSON file"),
    ],
)
def test_a_model_folder_with_a_broken_config_is_one_line(tmp_path: Path, config: bytes, message: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_bytes(config)
    result = _embed_with(folder, tmp_path)
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert message in line and str(folder) in line


def test_cuda_asked_for_without_cuda_is_one_line(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    gguf = tmp_path / "never-read.gguf"  # the device is checked before the model is read
    gguf.write_bytes(b"GGUF")
    for device in ("cuda", "cuda:1"):
        result = _embed_with(gguf, tmp_path, "--device", device)
        assert result.exit_code == 1
        assert "CUDA requested but not available" in one_error_line(result.output)


# --- damaged runs and calibration sets -------------------------------------------------------------------------


def _finished_run(run: Path, adapter_config: dict | None = None) -> Path:
    """A run folder that looks finished, with a small real safetensors file as its adapter weights."""
    import torch
    from safetensors.torch import save_file

    from lexprobe.runs import atomic_write_json
    from lexprobe.train import TrainConfig

    (run / "split").mkdir(parents=True)
    (run / "adapter").mkdir()
    config = TrainConfig(ontology="hgnc", task="name-to-symbol").to_dict()
    atomic_write_json(run / "train_config.json", {"config": config})
    atomic_write_json(run / "manifest.json", {"stage": "train"})
    atomic_write_json(run / "adapter" / "adapter_config.json", adapter_config or {"peft_type": "LORA", "r": 4})
    save_file(
        {"lora_A": torch.zeros(4, 64), "lora_B": torch.zeros(64, 4)}, run / "adapter" / "adapter_model.safetensors"
    )
    return run


def test_a_truncated_adapter_is_one_line_asking_to_retrain(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run")
    weights = run / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    result = runner.invoke(app, ["evaluate", str(run), "-q"])
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert f"{weights} is truncated or corrupt" in line and "re-train" in line and str(run) in line


@pytest.mark.parametrize(
    ("adapter_config", "message"),
    [({"r": 4, "lora_alpha": 8}, "has no peft_type"), ([1, 2], "has no peft_type")],
)
def test_an_adapter_config_without_peft_type_is_one_line(tmp_path: Path, adapter_config, message: str) -> None:
    run = _finished_run(tmp_path / "run", adapter_config)
    result = runner.invoke(app, ["evaluate", str(run), "-q"])
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert message in line and "re-train" in line and str(run) in line


def test_an_adapter_config_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run")
    (run / "adapter" / "adapter_config.json").write_bytes(b"\x00\xff{")
    result = runner.invoke(app, ["evaluate", str(run), "-q"])
    assert result.exit_code == 1
    assert "cannot be read" in one_error_line(result.output)


def test_a_train_config_without_a_config_is_one_line(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run")
    (run / "train_config.json").write_text('{"something": "else"}')
    result = runner.invoke(app, ["evaluate", str(run), "-q"])
    assert result.exit_code == 1
    assert "does not hold a training configuration" in one_error_line(result.output)


CALIBRATION = Path(__file__).resolve().parents[2] / "data" / "calibration" / "study-v2.2"


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # cut short: gzip raises EOFError, which click would print as "Aborted!"
        lambda b: b[:10] + bytes(x ^ 0x5A for x in b[10:200]) + b[200:],  # a damaged deflate stream
        lambda b: b"not gzip at all" * 10,  # BadGzipFile
    ],
    ids=["truncated", "corrupt", "not-gzip"],
)
def test_a_damaged_calibration_items_file_is_one_line_naming_it(tmp_path: Path, damage) -> None:
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for name in ("tasks.csv", "manifest.json"):
        (calibration / name).write_bytes((CALIBRATION / name).read_bytes())
    items = calibration / "items.csv.gz"
    items.write_bytes(damage((CALIBRATION / "items.csv.gz").read_bytes()))
    args = ["predict", "--ontology", "hgnc", "-t", "name-to-symbol", "--no-shipped", "-c", str(calibration)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert f"calibration table {items} is truncated or unreadable" in line, line
    assert "Aborted" not in result.output


def test_an_unexpected_end_of_file_anywhere_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lexprobe.runs

    def cut_short(*args, **kwargs):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(lexprobe.runs, "write_manifest", cut_short)
    result = _invoke("split", tmp_path / "out", tmp_path)
    assert result.exit_code == 1
    assert "truncated" in one_error_line(result.output) and "Aborted" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("template", ["{text} {other}", "{text} }", '{"gene": "{text}"}'])
def test_a_template_with_other_braces_keeps_them_as_text(tmp_path: Path, template: str) -> None:
    import numpy as np

    out = tmp_path / "e"
    args = ["embed", "--ontology", "hgnc", "-f", "symbol", "-n", "2", "--layers", "-1", "--template", template, "-q"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert np.isfinite(np.load(out / "embeddings.npy")).all()


@pytest.mark.parametrize(
    "command",
    [
        ["align", "--ontology", "hpo"],
        ["embed", "--ontology", "hpo", "--field", "name", "--out", "{tmp}/e"],
        ["lexicalization", "--ontology", "hpo"],
        ["split", "--ontology", "hpo", "--task", "name-to-id", "--out", "{tmp}/s"],
        ["study", "--ontology", "hpo", "--out", "{tmp}/st"],
        ["train", "--ontology", "hpo", "--task", "name-to-id", "--out", "{tmp}/t"],
    ],
)
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_out_of_numpy_and_sklearn_range_is_a_usage_error(tmp_path: Path, command: list[str], seed: str) -> None:
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in command] + ["--seed", seed])
    assert result.exit_code == 2, result.output
    assert "--seed" in result.output and "Traceback" not in result.output
