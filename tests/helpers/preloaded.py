"""``python preloaded.py GO SCRIPT ARGS...``: ``python SCRIPT ARGS...``, its imports done early.

Imports ``alexlab.train`` (torch and Lightning: most of a CLI start, ~9 s on 2 CPU cores) at
once, waits until the file ``GO`` exists and is not empty, then runs ``SCRIPT`` as
``__main__`` with ``sys.argv = [SCRIPT, *ARGS]``, as ``python SCRIPT`` would. A test that must
start a command only once another is ready (a second launch of a running run, a resume after a
signal) starts both together: the two imports overlap instead of adding up.
"""

import runpy
import sys
import time
from pathlib import Path

import alexlab.train  # noqa: F401  (the import this wrapper exists to do early)

go = Path(sys.argv[1])
deadline = time.monotonic() + 300
while not (go.is_file() and go.stat().st_size):
    if time.monotonic() > deadline:
        sys.exit(f"preloaded.py: {go} did not appear in 300 s")
    time.sleep(0.05)
sys.argv = sys.argv[2:]
sys.path[0] = str(Path(sys.argv[0]).resolve().parent)  # as `python SCRIPT` sets it
runpy.run_path(sys.argv[0], run_name="__main__")
