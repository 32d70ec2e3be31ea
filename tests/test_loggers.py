import csv

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from alexlab.loggers import ResumableCSVLogger


class Counter(L.LightningModule):
    """Logs its global step each step (and a second column when ``extra``): known values."""

    def __init__(self, extra: bool = False) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.extra = extra

    def training_step(self, batch, batch_idx):
        self.log("seen", float(self.global_step))
        if self.extra:
            self.log("extra", 7.0)
        return (self.w * batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(logger, module, steps):
    data = DataLoader(TensorDataset(torch.ones(8, 1)), batch_size=1)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        log_every_n_steps=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=data)


def test_csv_logger_appends_to_the_metrics_of_an_earlier_run_in_its_directory(tmp_path, recwarn):
    """A second run in the same directory keeps the first one's rows and adds its own; its new
    column joins the header, empty in the old rows (Lightning's CSVLogger deletes the file).
    Both loggers exist before either writes, as under ddp_spawn, where each stage's children
    start their own writer: the rows are read when the writer starts."""
    first, second = (ResumableCSVLogger(tmp_path, name="csv", version="") for _ in range(2))
    _fit(first, Counter(), steps=3)
    _fit(second, Counter(extra=True), steps=2)
    with (tmp_path / "csv" / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    got = [(r["step"], float(r["seen"]), r["extra"]) for r in rows]
    assert got == [("0", 0, ""), ("1", 1, ""), ("2", 2, ""), ("0", 0, "7.0"), ("1", 1, "7.0")]
    assert not [w for w in recwarn if "Previous log files" in str(w.message)]
