"""alexlab's input errors and their one printer, ``exit_with``: one paragraph naming the key (or
file), the value and the fix, exit status 2, no traceback (docs/errors.md)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from omegaconf.errors import MissingMandatoryValue


class InputError(Exception):
    """Bad input (config, path, data file): the message names it and the fix. The entry points
    print it as one paragraph, no traceback, headed ``alexlab: <kind>:``."""

    kind = "data error"


class ConfigError(InputError, ValueError):
    """A config value or path that cannot work. The message names the key and the fix."""

    kind = "config error"


class CorruptImageError(InputError):
    """An image file that cannot be decoded; the message names the file."""


def find_config_error(exc: BaseException | None) -> Exception | None:
    """The error of alexlab's own behind ``exc``: an InputError (Hydra's ``instantiate`` wraps
    the ones it meets), an error class defined in alexlab (the non-finite loss guard), or one
    of them re-raised from a DataLoader worker (its message holds the worker's traceback)."""
    while exc is not None:
        if isinstance(exc, InputError) or type(exc).__module__.startswith("alexlab."):
            return exc
        if isinstance(exc, MissingMandatoryValue):
            key = getattr(exc, "full_key", None) or "a key"
            return ConfigError(
                f"{key} has no value and no default: set {key}=... on the command line."
            )
        name, text = _worker_message(str(exc))
        if name.startswith("alexlab."):  # torch re-raises the type only when it can
            kinds = {"ConfigError": ConfigError, "CorruptImageError": CorruptImageError}
            return kinds.get(name.rsplit(".", 1)[-1], InputError)(text)
        exc = exc.__cause__ or exc.__context__
    return None


def _worker_message(message: str) -> tuple[str, str]:
    """``Caught X in DataLoader worker ... Original Traceback ... alexlab.M.X: msg`` ->
    ``("alexlab.M.X", "msg")``: a worker's error carries the worker's traceback in its message.
    ``("", message)`` for any other message."""
    if "Original Traceback" not in message:
        return "", message
    name, _, text = message.strip().splitlines()[-1].partition(": ")
    return name, text or name


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising a ConfigError met inside as itself."""
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except Exception as e:
        error = find_config_error(e)
        if error is None or error is e:
            raise
        raise error from None


def exit_with(error: BaseException) -> NoReturn:
    """The one printer of alexlab's errors: ``alexlab: <kind>: <message>`` on stderr, exit 2."""
    message = _worker_message(str(error))[1]  # a worker's error: its own message only
    print(f"alexlab: {getattr(error, 'kind', 'error')}: {message}", file=sys.stderr)
    sys.exit(2)


def report_config_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """CLI wrapper: an error of alexlab's own (bad config or data, a diverged run) becomes one
    paragraph on stderr and exit status 2, no traceback."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except Exception as e:
            error = find_config_error(e)
            if error is None:
                raise
            exit_with(error)

    return wrapper


def require_dir(path: str | Path | None, key: str, hint: str) -> Path:
    if path is None or str(path) == "":
        raise ConfigError(f"{key} is not set. {hint}")
    p = Path(path).expanduser()
    if p.is_file():
        raise ConfigError(f"{key}={path} is a file, not a directory. {hint}")
    if not p.is_dir():
        raise ConfigError(f"{key}={path}: no such directory. {hint}")
    return p
