"""A run's identity: the name of its directory, ``runs/<run id>/`` (docs/runs.md). Imported by
the config resolvers before torch loads: nothing heavy here."""

from __future__ import annotations

import os
import secrets
from datetime import datetime

# torchrun's rendezvous id when --rdzv-id is not given (a one-node launch without
# --rdzv-endpoint or --master-port, and --standalone, get a fresh uuid instead)
NO_RDZV_ID = "none"


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
