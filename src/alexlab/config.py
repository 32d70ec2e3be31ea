"""Where the configs live and the resolvers they use: the one place every entry point imports
(train, eval, predict, export), so no entry point imports another."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

from alexlab.runs.identity import run_id

# conf/ sits at the repository root, beside src/; a wheel carries a copy as alexlab/conf
# (setup.py). An absolute path: Hydra would read a relative one as a python module path.
_PACKAGED = Path(__file__).resolve().parent / "conf"
CONF_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "conf"


# `${uid:}` in run directory names: two runs started in the same second never share a folder.
# `${cwd:}`: the launch directory (Hydra's own `${hydra:runtime.cwd}` is not yet set when a
# sweeper resolves hydra.sweep.dir).
if not OmegaConf.has_resolver("uid"):
    OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(2), use_cache=True)
if not OmegaConf.has_resolver("cwd"):
    OmegaConf.register_new_resolver("cwd", os.getcwd)
# `${run_id:${run_name}}`: the run directory's name , computed once
if not OmegaConf.has_resolver("run_id"):
    OmegaConf.register_new_resolver("run_id", run_id, use_cache=True)

# the validation pass every entry point runs on its composed config (imported after CONF_DIR:
# it needs nothing from here, and nothing heavy)
from alexlab.validate import validate_config  # noqa: E402

__all__ = ["CONF_DIR", "run_id", "validate_config"]
