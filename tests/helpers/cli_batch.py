"""Run the real training CLI (``alexlab.cli.train``, what ``python train.py`` calls) once per
argument list inside one process, so dozens of bad values cost one interpreter start.

    python cli_batch.py '[["optimizer.lr=-1"], ["+lr=5"]]'  ->  JSON [{code, stdout, stderr}]
"""

import contextlib
import io
import json
import sys

from hydra.core.global_hydra import GlobalHydra

from alexlab.cli import train


def run_one(args: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["train.py", *args]
    GlobalHydra.instance().clear()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            train()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return {"args": args, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":
    results = [run_one(args) for args in json.loads(sys.argv[1])]
    modules = sorted(m for m in ("torch", "lightning") if m in sys.modules)
    print(json.dumps({"results": results, "heavy_modules": modules}))
