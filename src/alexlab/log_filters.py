"""What a run does not print: Lightning's start-up chatter, dropped by exact message (no
blanket filter: every other record, warnings included, still prints)."""

from __future__ import annotations

import logging
import warnings

# Lightning's info lines with no setting to turn them off (lightning 2.6: trainer/setup.py,
# logger_connector.py, callback_connector.py, trainer.py)
CHATTER = (
    "GPU available: ",
    "TPU available: ",
    "💡 Tip: ",
    "Loading `train_dataloader` to estimate number of stepping batches",
)


class DropLightningChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(CHATTER)


def quiet_known_warnings() -> None:
    """Lightning 2.6's pytree helper calls ``isinstance(x, LeafSpec)``, which torch 2.14
    deprecates: one warning per run that a user can do nothing about (this message only)."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
