"""alexlab's configuration: the YAML's folder, its resolvers, the schema of every setting, the
rules across keys and machines, the validation and the errors (docs/config.md). Nothing here
imports torch or Lightning."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

from alexlab.run.identity import run_id

# conf/ sits at the repository root, beside src/; a wheel carries a copy as alexlab/conf
# (setup.py). An absolute path: Hydra would read a relative one as a python module path.
_PACKAGED = Path(__file__).resolve().parents[1] / "conf"
CONF_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[3] / "conf"


# `${uid:}` in run directory names: two runs started in the same second never share a folder.
# `${cwd:}`: the launch directory (Hydra's own `${hydra:runtime.cwd}` is not yet set when a
# sweeper resolves hydra.sweep.dir).
OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(2), use_cache=True, replace=True)
OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
# `${run_id:${run_name}}`: the run directory's name, computed once
OmegaConf.register_new_resolver("run_id", run_id, use_cache=True, replace=True)

# what the rest of alexlab imports from here (after the resolvers; nothing heavy)
from alexlab.config.errors import (  # noqa: E402, F401
    ConfigError,
    CorruptImageError,
    InputError,
    build,
    exit_with,
    report_config_errors,
    require_dir,
)
from alexlab.config.validate import validate_config, validate_section  # noqa: E402, F401
