"""The CLI prints a stopped run as one paragraph and exits 2 (no traceback)."""

import pytest

from alexlab.callbacks.nonfinite import NonFiniteLossError
from alexlab.config import report_config_errors


def test_cli_prints_one_paragraph_and_exits_2(capsys):
    @report_config_errors
    def task():
        raise NonFiniteLossError("non-finite loss (NaN or Inf) in step 7, found after step 8.")

    with pytest.raises(SystemExit) as stop:
        task()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert (
        err == "alexlab: training stopped: non-finite loss (NaN or Inf) in step 7, "
        "found after step 8.\n"
    )
