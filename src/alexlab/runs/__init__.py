"""Runs: one directory per run, for its whole life, however many jobs it takes.

- ``identity``: the run directory's name (``run_name``, the SLURM job, or the start time).
- ``rundir``: the directory checked before any work, and removed again when a start fails.
- ``lock``: one live process per run directory (``run.lock``).
- ``resume`` and ``contract``: which checkpoint a run starts from, and which settings a new
  command may change (identity / plan / free keys).
- ``checkpoint``: a checkpoint opened safely and read through one typed interface.
- ``state``: what alexlab stores in a checkpoint beside Lightning's state, and its restore.
- ``files``: checkpoint files (atomic writes, the previous ``last.ckpt``, which to resume).
- ``interrupt``: SIGTERM / Ctrl-C / USR2 save ``last.ckpt`` and stop; SLURM requeue.

(Nothing heavy is imported here: the config resolvers import ``identity`` before torch loads.)
"""
