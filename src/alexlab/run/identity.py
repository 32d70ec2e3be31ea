"""A run's identity: the name of its directory, ``runs/<run id>/`` (docs/runs.md). Imported by
the config resolvers before torch loads: nothing heavy here."""

from __future__ import annotations

import os
import secrets
from datetime import datetime


def run_id(name: str | None) -> str:
    """``run_name``, else the SLURM job (stable across requeues), else the start time."""
    if name:
        return str(name)
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"slurm-{array_job}_{task}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}-{secrets.token_hex(2)}"
