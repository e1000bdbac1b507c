"""Two processes that first use the same model at once: one converts, the other waits and reuses the result."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A stand-in for the half-minute GGUF conversion: it counts itself and takes long enough for the runs to overlap.
WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import lexprobe.models as models

    def fake_convert(gguf, tmp, *, fix):
        with open(sys.argv[2], "a") as log:
            log.write("converted\\n")
        time.sleep(1.5)
        (Path(tmp) / "model.safetensors").write_bytes(b"weights")

    models._convert = fake_convert
    target, checksum = models._converted_gguf(Path(sys.argv[1]))
    print(target, checksum)
    """
)


def test_a_concurrent_first_use_converts_once_and_both_get_the_model(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF tiny stand-in")
    log = tmp_path / "conversions.log"
    env = {**os.environ, "LEXPROBE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(gguf), str(log)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert log.read_text().splitlines() == ["converted"]  # the second process waited, then reused it
    targets = {out.split()[0] for out, _ in outputs}
    assert len(targets) == 1
    target = Path(targets.pop())
    assert (target / "model.safetensors").read_bytes() == b"weights"
    assert (target / "lexprobe-complete.json").is_file()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.") and p.is_dir()]
