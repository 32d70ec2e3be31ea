"""The logged metric names, defined once: ``val/acc1``, the spelling used in logs, checkpoint
names, ``metrics.json`` and ``monitor:``. Light to import: the config check reads them before
torch and Lightning load."""

STAGES = ("train", "val", "test")
METRICS = ("loss", "acc1", "acc5")


def metric_name(stage: str, metric: str) -> str:
    return f"{stage}/{metric}"


def all_metric_names() -> list[str]:
    return [metric_name(s, m) for s in STAGES for m in METRICS]
