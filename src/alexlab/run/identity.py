"""A run's identity: the name of its directory, ``runs/<run id>/``, and which of the launch's
processes is its first (docs/runs.md). Imported by the config resolvers before torch loads:
nothing heavy here."""

from __future__ import annotations

import os
import secrets
from datetime import datetime

# torchrun's rendezvous id when --rdzv-id is not given (a one-node launch without
# --rdzv-endpoint or --master-port, and --standalone, get a fresh uuid instead)
NO_RDZV_ID = "none"
# The variables Lightning reads for a process's rank, the first one set deciding (as for
# ``rank_zero_only.rank``); LOCAL_RANK is set only in the ranks Lightning itself starts
LAUNCHED_RANKS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def run_id(name: str | None) -> str:
    """``run_name``, else the id every process of the launch shares (``launch_id``), else the
    start time."""
    if name:
        return str(name)
    return launch_id() or f"{datetime.now():%Y-%m-%d_%H-%M-%S}-{secrets.token_hex(2)}"


def launch_id() -> str | None:
    """The SLURM job (stable across requeues), else torchrun's rendezvous id (the same on every
    node and in every elastic restart), else None."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"slurm-{array_job}_{task}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    rdzv = os.environ.get("TORCHELASTIC_RUN_ID")
    if rdzv and rdzv != NO_RDZV_ID:
        return f"torchrun-{rdzv}"
    return None


def torchrun_without_id() -> bool:
    """A torchrun launch whose processes share no usable id (no ``--rdzv-id``)."""
    return os.environ.get("TORCHELASTIC_RUN_ID") == NO_RDZV_ID


def first_process() -> bool:
    """Whether this process is the launch's rank 0 (it takes the run lock; the others start while
    it holds it), told before the Trainer exists. The first of ``LAUNCHED_RANKS`` set is read as
    Lightning reads it: a global rank (``RANK``: torchrun, Kubeflow; ``JSM_NAMESPACE_RANK``: LSF)
    decides alone; after ``LOCAL_RANK``, ``SLURM_PROCID`` (Lightning ignores it outside a SLURM
    batch) or none, the node must be 0 too (``NODE_RANK``, else ``GROUP_RANK``, as Lightning's
    plain environment reads them for nodes started by hand)."""
    key = next((key for key in LAUNCHED_RANKS if key in os.environ), None)
    if key is not None and int(os.environ[key]) != 0:
        return False
    node = os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0"))
    return key in ("RANK", "JSM_NAMESPACE_RANK") or int(node) == 0
