"""The run directory before any work: writable (checked by the Hydra callback ``CheckRunDir``
before Hydra makes it, and by ``alexlab.train.train`` for callers that skip the CLI), and removed
again when an error of the user's stops a start before training (``FailedStart``)."""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from alexlab.config import ConfigError, InputError, exit_with
from alexlab.run.identity import first_process
from alexlab.run.lock import check_free

HYDRA_FILES = {".hydra", "run.lock"}  # and Hydra's <job name>.log


def check_writable(run_dir: Path) -> None:
    """The run directory (or the folder it will be made in) and its ``checkpoints/`` take new
    files; a path on the way that is a file is named as such."""
    for path in (run_dir, run_dir / "checkpoints"):
        base = path  # the nearest path that exists
        while not base.exists() and base != base.parent:
            base = base.parent
        if not base.is_dir():
            raise ConfigError(
                f"{base} is a file, but the run directory {run_dir} needs it to be a folder. "
                f"Move the file, or set paths.runs_dir (or run_name) to another place."
            )
        if not os.access(base, os.W_OK | os.X_OK):
            raise ConfigError(
                f"{base} is not writable, so the run cannot write {path}. Make it writable "
                f"(chmod u+w {base}), or set paths.runs_dir=<a writable folder>."
            )


def only_hydra_files(run_dir: Path) -> bool:
    """Nothing in the directory but what Hydra and the lock put there at start (or no dir)."""
    if not run_dir.is_dir():
        return True
    return all(p.name in HYDRA_FILES or p.suffix == ".log" for p in run_dir.iterdir())


class FailedStart(AbstractContextManager):
    """``with FailedStart(run_dir) as start: ...; start.done()``: an ``InputError`` before
    ``done()`` removes the directory when it held nothing of an earlier run at the start."""

    def __init__(self, run_dir: Path, *, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.remove_on_error = enabled and only_hydra_files(self.run_dir)  # until done()

    def done(self) -> None:
        self.remove_on_error = False

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if isinstance(error, InputError) and self.remove_on_error:
            shutil.rmtree(self.run_dir, ignore_errors=True)


class CheckRunDir(Callback):
    """Hydra callback: before Hydra makes the run directory or writes its files there, the
    directory's folder is writable and no live run holds it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(config.hydra.run.dir)).absolute()
        try:
            check_writable(run_dir)
            if first_process():  # the others start while it holds the lock
                check_free(run_dir)
        except ConfigError as e:
            exit_with(e)
