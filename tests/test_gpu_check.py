"""`make gpu-check` on the CPU: a dry run of every step (so the script cannot rot before a GPU
arrives), its report and BENCHMARKS section written to tmp_path, never the repository's."""

import json
import os
import sys
from pathlib import Path

import pytest
from subproc import run, side_by_side, through_zygote

ROOT = Path(__file__).resolve().parents[1]


def check_report(out: Path, bench: Path, printed: str) -> dict:
    lines = printed.strip().splitlines()
    assert "No CUDA GPU here: this is a DRY RUN" in lines[0]  # said first
    assert lines[-1] == str(out / "report.json")  # the last line: the report's path
    report = json.loads((out / "report.json").read_text())
    assert report["device"] == "CPU (dry run: no GPU)" and report["passed"]
    steps = report["steps"]
    failed = {k: v for k, v in steps.items() if isinstance(v, dict) and v.get("status") == "fail"}
    assert not failed, failed
    assert {"fit: DALI mixed, compile on", "fit: 2-process DDP"} <= set(report["skipped"])
    fit = steps["fit: DALI mixed, compile off"]
    assert fit["images_per_sec"] > 0 and 0 <= fit["val_top1"] <= 1
    # eval re-validates the fit's best checkpoint on the same images: the fit's own figure
    assert steps["eval"]["val_top1"] == pytest.approx(fit["val_top1"])
    first_class = sorted((out / "data" / "val").iterdir())[0]
    assert steps["predict"]["images"] == len(list(first_class.iterdir()))
    sync = steps["no host sync on quiet steps"]
    assert sync["syncs_on_quiet_steps"] == 0 and sync["quiet_steps"] >= 6
    assert sync["syncs_on_logging_steps"] + sync["quiet_steps"] > 0  # windows were counted
    rows = {r["what"] for r in steps["bench: training (ceiling, DALI, torch loader)"]["rows"]}
    assert any("synthetic" in w for w in rows) and any("torch loader" in w for w in rows)
    assert [r["what"].split(",")[0] for r in steps["bench: Lightning vs raw loop"]["rows"]] == [
        "raw PyTorch loop",
        "bare LightningModule",
        "alexlab module",
    ]
    text = bench.read_text()
    assert text.startswith("# kept\n")  # appended, never overwritten
    assert "### `make gpu-check`" in text and "no GPU: dry run on the CPU" in text
    return report


def test_tiny_dry_run_runs_every_kind_of_step_and_reports(tmp_path, capsys, monkeypatch):
    from benchmarks import gpu_check

    # its train.py, eval.py and `-m alexlab....` commands fork from the tests' preloaded process
    # (tests/helpers/zygote.py); the plain-script test below starts them fresh
    monkeypatch.setattr(gpu_check, "subprocess", through_zygote())
    bench = tmp_path / "BENCH.md"
    bench.write_text("# kept\n")
    path = gpu_check.main(["--tiny", "--out", str(tmp_path / "out"), "--benchmarks", str(bench)])
    assert path == tmp_path / "out" / "report.json"
    report = check_report(tmp_path / "out", bench, capsys.readouterr().out)
    assert "fit: torch loader" in report["skipped"]  # --tiny: one fit


@pytest.mark.slow  # the whole dry run: 3-4 minutes on 2 busy cores
def test_the_full_dry_run_starts_as_a_plain_script(tmp_path):
    bench = tmp_path / "BENCH.md"
    bench.write_text("# kept\n")
    done = run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--out",
            str(tmp_path / "out"),
            "--benchmarks",
            str(bench),
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = check_report(tmp_path / "out", bench, done.stdout)
    torch_fit = report["steps"]["fit: torch loader"]
    assert torch_fit["status"] == "pass" and torch_fit["steps"] >= 30
    assert report["steps"]["no host sync on quiet steps"]["steps"] >= 30


WANDB_CHECK = (
    "import sys; sys.argv = ['x']; import benchmarks.gpu_check, benchmarks.gpu_report, "
    "alexlab.train, alexlab.evaluate, alexlab.predict, alexlab.export; "
    "print('wandb' in sys.modules)"
)


@pytest.fixture(scope="module", autouse=True)
def wandb_check(request):
    """The import check below, started with the module's first test when it is selected: it is
    one process importing torch on one core, beside the dry run (mostly one process at a time)."""
    if not any(
        item.originalname == "test_nothing_it_imports_pulls_in_wandb"
        for item in request.session.items
        if item.path == request.path
    ):
        yield None
        return
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    with side_by_side() as launch:
        yield launch([sys.executable, "-c", WANDB_CHECK], env=env, cwd=ROOT)


def test_nothing_it_imports_pulls_in_wandb(wandb_check):
    """The GPU machine has no wandb (logger=csv there): the check, the bench and the training
    code import it only when logger=wandb is used."""
    done = wandb_check.result()
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
