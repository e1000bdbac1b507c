"""Run as a script: hold the run folder argv[1]'s lock for argv[2] seconds (printing ``held`` once it does), as
another `lexprobe` command writing that folder would."""

from __future__ import annotations

import sys
import time

from lexprobe.runs import run_lock

with run_lock(sys.argv[1], command="lexprobe align --out " + sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
