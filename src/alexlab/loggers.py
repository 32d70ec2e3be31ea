"""Logger set-up that needs more than YAML: W&B online/offline choice, sweep grouping, resume,
and a CSV logger that continues a resumed run's ``metrics.csv``. W&B goes offline by itself
(never hanging, never crashing) without an API key or a reachable server, and says how to
upload the run later."""

from __future__ import annotations

import csv
import netrc
import os
import socket
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch import loggers
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, open_dict

WANDB_TARGETS = ("alexlab.loggers.WandbLogger", "lightning.pytorch.loggers.WandbLogger")


# Lightning's own. It hands wandb.init ``anonymous=None``, which recent wandb (0.31 here) answers
# with one "The anonymous setting has no effect" line per process (wandb/wandb#10909 names
# Lightning as the caller); leaving it out needs Lightning's private init dict.
WandbLogger = loggers.WandbLogger  # the name older run configs' _target_ still use


def wandb_offline_reason(timeout: float = 3.0) -> str | None:
    """Why W&B must run offline here, or None when it can go online."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={mode}"
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host = url.hostname or "api.wandb.ai"
    key = os.environ.get("WANDB_API_KEY")
    with suppress(netrc.NetrcParseError, OSError):  # no ~/.netrc, or one that cannot be read
        key = key or (netrc.netrc().authenticators(host) or (None, None, None))[2]
    if not key:
        return "no W&B API key (set WANDB_API_KEY or run `wandb login`)"
    try:
        socket.create_connection((host, url.port or 443), timeout=timeout).close()
    except OSError:
        return f"{host} cannot be reached"
    return None


def prepare_loggers(cfg: DictConfig, *, sweep_name: str | None, resume_ids: dict[str, Any]) -> None:
    """Edit ``cfg.logger`` in place before the loggers are built."""
    for node in (cfg.get("logger") or {}).values():
        if node is None or node.get("_target_") not in WANDB_TARGETS:
            continue
        # W&B files of every process (ddp_spawn's children re-attach to the run) stay in the
        # run directory, never in <current directory>/wandb
        os.environ["WANDB_DIR"] = str(node.save_dir)
        with open_dict(node):
            if node.get("group") is None and sweep_name:
                node.group = sweep_name  # the jobs of one sweep side by side in the W&B UI
            if resume_ids.get("WandbLogger") and node.get("id") is None:
                node.id = resume_ids["WandbLogger"]  # continue the run the checkpoint came from
                node.resume = "allow"
            if not node.get("offline") and (reason := wandb_offline_reason()):
                node.offline = True
                rank_zero_info(
                    f"[alexlab] W&B runs offline: {reason}. Upload later with "
                    f"`wandb sync {node.save_dir}/wandb/offline-run-*`."
                )


def logger_step(trainer: Any, *, done: bool) -> bool:
    """True on the optimizer steps Lightning writes to the loggers (every
    ``trainer.log_every_n_steps``). ``done``: asked after that step's optimizer step
    (``on_train_batch_end``) rather than before it (``training_step``)."""
    step = trainer.global_step if done else trainer.global_step + 1
    every = trainer.log_every_n_steps
    return bool(trainer.fast_dev_run) or (every > 0 and step % every == 0)


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` continues when a run resumes in its own directory.

    Lightning 2.6's writer deletes an existing ``metrics.csv`` when it starts, with no switch for
    it: the rows are read first (in the process that starts the writer, a ``ddp_spawn`` child
    too) and handed to the new writer through its public ``log_metrics``."""

    _started = False  # set on the instance once the writer has taken the old rows

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._started:
            return super().experiment
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        rows: list[dict[str, str]] = []
        if path.is_file():
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
        with warnings.catch_warnings():  # "... will be deleted": the rows are carried over
            warnings.filterwarnings("ignore", "Experiment logs directory .* is not empty")
            writer = super().experiment
        self._started = True
        for row in rows:
            step = row.pop("step", None)
            writer.log_metrics({k: v for k, v in row.items() if k and v not in ("", None)}, step)
        if rows:
            writer.save()  # at once: the old file is gone until the writer saves
        return writer
