"""The torch loader's worker processes: they stop when the stage ends, and never stall the exit."""

import json
import multiprocessing
import sys
import time

import pytest
from subproc import run, train_cli

from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import DigitsSource


def test_teardown_stops_the_workers_at_once(cache_dir):
    """Lightning calls ``teardown`` at the end of each stage: the workers are joined there, in
    well under their 5 s join time-out (they exit as soon as they are told to)."""
    dm = ImageDataModule(
        root=cache_dir,
        source=DigitsSource,
        loader="torch",
        num_workers=2,
        batch_size=8,
        image_size=32,
        resize_size=32,
        pin_memory=False,
    )
    train, val = dm.train_dataloader(), dm.val_dataloader()
    next(iter(train)), next(iter(val))  # an epoch cut short, as limit_*_batches does
    assert len(multiprocessing.active_children()) == 4
    start = time.perf_counter()
    dm.teardown("fit")
    assert multiprocessing.active_children() == []
    assert time.perf_counter() - start < 3
    assert len(next(iter(val))[1]) == 8  # a later stage starts new workers


EXIT_SCRIPT = """
import sys, time
import alexlab.data.dali  # registers DALI's atexit gc.collect(), as in every run
from alexlab.data.datamodule import ImageDataModule
from alexlab.data.sources import DigitsSource
dm = ImageDataModule(root=sys.argv[1], source=DigitsSource, loader="torch",
                     num_workers=int(sys.argv[2]), batch_size=8, image_size=32, resize_size=32,
                     pin_memory=False)
holder = {"loader": dm.train_dataloader()}
holder["cycle"] = holder  # freed by the garbage collector only, as Lightning's loops are
next(iter(holder["loader"]))
print(time.time(), flush=True)  # no teardown: an error path
"""


@pytest.mark.slow  # two interpreters: their exit alone takes seconds on 2 shared cores
def test_a_loader_left_to_the_exit_does_not_stall_it(cache_dir):
    """Without ``teardown`` (a crash): the atexit stop runs before DALI's exit-time collection,
    which used to join each worker until its 5 s time-out."""
    exit_seconds = {}
    for workers in (0, 2):
        result = run([sys.executable, "-c", EXIT_SCRIPT, str(cache_dir), str(workers)], timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        exit_seconds[workers] = time.time() - float(result.stdout.split()[-1])
    assert exit_seconds[2] < exit_seconds[0] + 3, exit_seconds  # was + 10 s


@pytest.mark.slow  # two CLI runs
def test_a_run_with_workers_spends_no_longer_outside_its_fit_than_one_without(tmp_path):
    outside = {}
    for workers in (0, 2):
        start = time.perf_counter()
        result = train_cli(
            "data.loader=torch",
            f"data.num_workers={workers}",
            "logger=csv",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=2",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / str(workers)}",
            cwd=tmp_path,
        )
        wall = time.perf_counter() - start
        assert result.returncode == 0, result.stderr[-2000:]
        metrics = json.loads((tmp_path / str(workers) / "metrics.json").read_text())
        outside[workers] = wall - metrics["fit_seconds"]
    assert outside[2] < outside[0] + 5, outside  # was +20 s: 4 workers x 5 s join time-outs
