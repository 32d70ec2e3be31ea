"""Checkpoints are read through one typed interface, and nothing stored in one ever runs."""

import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from subproc import side_by_side

from alexlab.config import ConfigError
from alexlab.evaluate import evaluate
from alexlab.export import export_onnx
from alexlab.predict import predict
from alexlab.run.checkpoint import open_checkpoint
from alexlab.train import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    from conftest import TINY, compose_config

    out = tmp_path_factory.mktemp("ckpt")
    cfg = compose_config(  # the session's digits tree: generating one takes seconds
        "train", [*TINY, "logger=none"], output_dir=out / "run", cache_dir=cache_dir
    )
    cfg.data.num_workers = 0
    return train(cfg), cfg


def payloads(victim: Path) -> dict[str, dict]:
    """Model configs an attacker could store: each names code that a Hydra ``instantiate`` of
    the stored config would run (truncate ``victim``, print, fetch from the hub)."""
    opener = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    return {
        "nested_open": {"widths": opener},
        "nested_print": {"hidden": {"_target_": "builtins.print", "_args_": ["PWNED"]}},
        "hub_load": {"_target_": "torch.hub.load", "repo_or_dir": "evil/repo", "model": "x"},
        "top_level_open": {"_target_": "builtins.open", "file": str(victim), "mode": "w"},
        "unknown_key": {"extra": {"_target_": "builtins.print", "_args_": ["PWNED"]}},
    }


def craft(src: str, dst: Path, model_edit: dict) -> Path:
    ckpt = torch.load(src, weights_only=True)
    ckpt["alexlab"]["run_config"]["model"].update(model_edit)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize("payload", list(payloads(Path("x"))))
def test_crafted_checkpoints_are_refused_by_eval_predict_and_export(
    trained, tmp_path, eval_cfg, payload, capsys
):
    summary, _ = trained
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    bad = craft(summary["last_ckpt"], tmp_path / "bad.ckpt", payloads(victim)[payload])
    image = next(Path(summary["output_dir"]).parent.rglob("val/3/*.jpg"), None) or bad
    runs = {
        "eval": lambda: evaluate(eval_cfg(str(bad))),
        "predict": lambda: predict(
            OmegaConf.create(
                {
                    "ckpt_path": str(bad),
                    "input": str(image),
                    "topk": 1,
                    "show_all_probs": False,
                    "batch_size": 4,
                    "device": "cpu",
                    "max_image_pixels": 10**8,
                }
            )
        ),
        "export": lambda: export_onnx(str(bad), tmp_path / "m.onnx"),
    }
    for name, task in runs.items():
        with pytest.raises(ConfigError, match=r"never builds anything a checkpoint names"):
            task()
        assert victim.read_text() == "precious", name  # the file was never opened for writing
        assert "PWNED" not in capsys.readouterr().out, name
    assert not (tmp_path / "m.onnx").exists()


CLI_TEST = "test_the_clis_refuse_a_crafted_checkpoint_in_one_paragraph"


@pytest.fixture(scope="module", autouse=True)
def cli_refusals(request, trained, tmp_path_factory):
    """The real commands of the CLI test below (those selected), started with the module's first
    test: each is ~10 s of imports on one core, run beside the in-process tests. cli -> (its
    future ``CompletedProcess``, the file its checkpoint tries to open)."""
    summary, _ = trained
    clis = [
        item.callspec.params["cli"]
        for item in request.session.items
        if item.path == request.path and item.originalname == CLI_TEST
    ]
    started = {}
    with side_by_side() as launch:
        for cli in clis:
            tmp = tmp_path_factory.mktemp(f"cli-{cli}")
            victim = tmp / "victim.txt"
            victim.write_text("precious")
            bad = craft(summary["last_ckpt"], tmp / "bad.ckpt", payloads(victim)["nested_open"])
            cmd = {
                "eval": [str(ROOT / "eval.py"), f"ckpt_path={bad}", f"hydra.run.dir={tmp / 'e'}"],
                "predict": ["-m", "alexlab.predict", f"ckpt_path={bad}", f"input={bad}"],
                "export": ["-m", "alexlab.export", f"ckpt_path={bad}"],
            }[cli]
            started[cli] = launch([sys.executable, *cmd], cwd=tmp), victim
        yield started


# every payload against all three is the in-process test above; here each real command, two of
# them in the slow run (12 s each)
@pytest.mark.parametrize(
    "cli",
    [
        "predict",
        pytest.param("eval", marks=pytest.mark.slow),
        pytest.param("export", marks=pytest.mark.slow),
    ],
)
def test_the_clis_refuse_a_crafted_checkpoint_in_one_paragraph(cli_refusals, cli):
    future, victim = cli_refusals[cli]  # started by the fixture
    result = future.result()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "run_config.model.widths is a mapping" in result.stderr
    assert victim.read_text() == "precious"


def test_the_typed_interface_reads_what_train_wrote(trained):
    summary, cfg = trained
    ckpt = open_checkpoint(summary["best_ckpt"])
    assert ckpt.num_classes == 10 and ckpt.class_names == [str(d) for d in range(10)]
    assert ckpt.image_settings() == {
        "image_size": 64,
        "resize_size": 64,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
    }
    assert ckpt.model_kwargs()["widths"] == [8, 16, 16, 16, 16]
    net = ckpt.build_net()
    stored = torch.load(summary["best_ckpt"], weights_only=True)["state_dict"]
    for key, value in net.state_dict().items():
        assert torch.equal(value, stored[f"net.{key}"]), key
    with pytest.raises(ConfigError, match="data.num_classes=7 but .* trained with 10 classes"):
        ckpt.check_classes(7)


def test_eval_refuses_a_model_override_with_a_checkpoint(trained, eval_cfg):
    summary, _ = trained
    with pytest.raises(ConfigError, match="both name a network"):
        evaluate(eval_cfg(summary["best_ckpt"], "model=alexnet_tv"))
