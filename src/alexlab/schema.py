"""The schema of every config group: type, range and allowed choices of each value.

One table per group (per ``_target_`` where options build different things); ``validate``
in ``alexlab.validate`` walks them and adds the rules that span keys. Nothing here imports
torch or Lightning, so a bad value is refused in a fraction of a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from alexlab.checks import ConfigError


@dataclass(frozen=True)
class Rule:
    """What one key accepts. ``kind``: int, num (int or float), bool, str, any; ``lo``/``hi``
    bound numbers (``lo_open``: strictly above ``lo``); ``choices`` lists the allowed values;
    ``size``: a list of that many items of ``kind``; ``null``: None is allowed too."""

    kind: str = "any"
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple = ()
    size: int | None = None  # a list of exactly `size` items (0: any length)
    null: bool = False
    example: Any = None
    why: str = ""  # the reason for a bound, said in the message

    def allowed(self) -> str:
        if self.choices:
            text = "one of " + ", ".join(dict.fromkeys(str(c) for c in self.choices))
        else:
            name = {"int": "an integer", "num": "a number", "bool": "true or false",
                    "str": "a string"}.get(self.kind, "a value")  # fmt: skip
            bounds = []
            if self.lo is not None:
                bounds.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
            if self.hi is not None:
                bounds.append(f"<= {self.hi:g}" if self.kind == "num" else f"<= {self.hi:d}")
            text = f"{name} {' and '.join(bounds)}".strip()
        if self.size is not None:
            text = f"a list of {self.size or 'any number of'} items, each {text}"
        return text + (", or null" if self.null else "") + (f" ({self.why})" if self.why else "")

    def fix(self, key: str) -> str:
        if self.example is not None:
            return f"{key}={self.example}"
        if self.kind == "bool":
            return f"{key}=null" if self.null else f"{key}=true (or false)"
        if self.choices:
            return f"{key}={self.choices[0]}"
        value = self.lo if self.lo is not None else 1
        if self.lo_open:
            value = value + 1 if self.kind == "int" else 0.1 if value == 0 else value * 2
        return f"{key}={int(value) if self.kind == 'int' else value:g}"

    def accepts_item(self, value: Any) -> bool:
        if self.choices:
            return any(value == c and type(value) is type(c) for c in self.choices) or (
                isinstance(value, str) and value in [str(c) for c in self.choices]
            )
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind in ("int", "num"):
            types = (int,) if self.kind == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, types):
                return False
            if not math.isfinite(value):
                return False
            if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
                return False
            return self.hi is None or value <= self.hi
        return True

    def check(self, key: str, value: Any) -> None:
        if value is None and self.null:
            return
        if self.size is not None:
            ok = isinstance(value, list | tuple) and (not self.size or len(value) == self.size)
            ok = ok and all(self.accepts_item(v) for v in value)
        else:
            ok = not isinstance(value, list | tuple | dict) and self.accepts_item(value)
        if not ok:
            raise ConfigError(
                f"{key}={show(value)} is not allowed: {key} takes {self.allowed()}. "
                f"Set e.g. {self.fix(key)}."
            )


def show(value: Any) -> str:
    """A value as it is typed on the command line."""
    if isinstance(value, list | tuple) or OmegaConf.is_list(value):
        return "[" + ",".join(show(v) for v in value) + "]"
    return "null" if value is None else str(value)


def Int(lo: float | None = None, **kw: Any) -> Rule:  # noqa: N802 (reads as a type)
    return Rule("int", lo=lo, **kw)


def Num(lo: float | None = None, hi: float | None = None, **kw: Any) -> Rule:  # noqa: N802
    return Rule("num", lo=lo, hi=hi, **kw)


def Choice(*choices: Any, **kw: Any) -> Rule:  # noqa: N802
    return Rule("any", choices=choices, **kw)


def feature_side(size: int) -> int:
    """Side of AlexNet's last feature map for a ``size`` input (conv1 11/4 with padding 2, or 0
    at 227; three 3/2 max-pools; the other convolutions keep the size)."""
    side = (size + 2 * (0 if size == 227 else 2) - 11) // 4 + 1
    for _ in range(3):
        side = (side - 3) // 2 + 1 if side >= 3 else 0
    return side


MIN_IMAGE_SIZE = next(s for s in range(1, 512) if feature_side(s) >= 1)  # 63
IMAGE_SIZE = Int(MIN_IMAGE_SIZE, example=224, why="AlexNet's three 3/2 max-pools need it")
BOOL, STR, ANY = Rule("bool"), Rule("str"), Rule("any")
OPT_STR, OPT_BOOL = Rule("str", null=True), Rule("bool", null=True)
PROB = Num(0, 1)
POS_INT, OPT_POS_INT = Int(1), Int(1, null=True)
SEED = Int(0, hi=2**32 - 1)  # numpy's and Lightning's seed range

# --- model: alexlab.models.alexnet.build (every option of the group) -------------------------
MODEL = {
    "num_classes": Int(1, null=True, example=10), "widths": Int(1, size=5, example="[96,256,384,384,256]"),
    "hidden": Int(1, example=4096), "dropout": Num(0, 1, example=0.5), "norm": Choice("lrn", "bn", "none"),
    "groups": Choice(1, 2, why="2: the paper's two towers"), "input_size": IMAGE_SIZE, "pool_size": POS_INT,
    "init": Choice("paper", "default"), "weights": OPT_STR, "channels_last": BOOL,
    "compile": BOOL,
}  # fmt: skip

# --- data: one table per data module ------------------------------------------------------------
_BATCHES = {"num_classes": Int(1, null=True, example=10), "batch_size": Int(1, example=64),
            "global_batch_size": Int(1, null=True, example=512), "image_size": IMAGE_SIZE}  # fmt: skip
_NORMALISE = {"mean": Num(0, 1, size=3, example="[0.485,0.456,0.406]"),
              "std": Num(0, lo_open=True, size=3, example="[0.229,0.224,0.225]")}  # fmt: skip
IMAGE_DATA = {
    **_BATCHES, **_NORMALISE, "root": OPT_STR, "source": ANY,
    "loader": Choice("auto", "dali", "torch"), "num_workers": Int(0, example=4),
    "resize_size": Int(1, example=256), "crop": Choice("random_resized", "paper"),
    "scale": Num(0, 1, lo_open=True, size=2, example="[0.08,1.0]"),
    "ratio": Num(0, lo_open=True, size=2, example="[0.75,1.333]"), "hflip_prob": PROB,
    "lighting_std": Num(0, example=0.1), "channels_last": BOOL, "fp16": BOOL, "ten_crop": BOOL,
    "dali_threads": Int(1, null=True, example=4), "dali_prefetch": POS_INT,
    "dali_fast_idct": BOOL, "dali_hw_decoder_load": Num(0, 1, example=0.65), "seed": SEED,
    "skip_corrupt": BOOL, "max_image_pixels": Int(1, example=89478485), "pin_memory": BOOL,
}  # fmt: skip
CIFAR_DATA = {**_BATCHES, **_NORMALISE, "root": OPT_STR, "download": BOOL, "hflip_prob": PROB,
              "num_workers": Int(0)}  # fmt: skip
SYNTHETIC_DATA = {**_BATCHES, "steps_per_epoch": POS_INT, "val_steps": Int(0), "seed": SEED}
DATA = {
    "alexlab.data.datamodule.ImageDataModule": IMAGE_DATA,
    "alexlab.data.cifar.CIFAR10DataModule": CIFAR_DATA,
    "alexlab.data.synthetic.SyntheticDataModule": SYNTHETIC_DATA,
}
SOURCE = {  # data.source (a _partial_ the data module calls with data.root)
    "seed": SEED, "val_fraction": Num(0, 1, lo_open=True, example=0.2), "size": Int(8),
    "train_split": STR, "val_split": STR, "test_split": OPT_STR,
}  # fmt: skip

# --- optimizer: one table per optimizer class ---------------------------------------------------
_LR = {"lr": Num(0, lo_open=True, example=0.01), "weight_decay": Num(0, example=5e-4)}
_KERNELS = {"foreach": OPT_BOOL, "fused": OPT_BOOL}
_ADAM = {**_LR, **_KERNELS, "betas": Num(0, 1, size=2, example="[0.9,0.999]"),
         "eps": Num(0, lo_open=True), "amsgrad": BOOL}  # fmt: skip
OPTIMIZER = {
    "torch.optim.SGD": {
        **_LR,
        **_KERNELS,
        "momentum": Num(0, 1, example=0.9),
        "nesterov": BOOL,
        "dampening": Num(0, 1),
    },  # fmt: skip
    "torch.optim.Adam": _ADAM,
    "torch.optim.AdamW": _ADAM,
    "alexlab.optim.lars.LARS": {
        **_LR,
        "momentum": Num(0, 1, example=0.9),
        "eps": Num(0),
        "trust_coefficient": Num(0, lo_open=True, example=0.001),
        "trust_clip": BOOL,
    },  # fmt: skip
}

# --- schedule: alexlab.optim.schedules.warmup_lr_scheduler (its KINDS) ---------------------------
SCHEDULE = {
    "kind": Choice("constant", "cosine", "step", "poly", "plateau"),
    "warmup_epochs": Num(0, example=5), "min_factor": PROB, "gamma": Num(0, lo_open=True, example=0.1),
    "power": Num(0, lo_open=True, example=2.0), "milestones_epochs": Num(0, size=0, example="[30,60]"),
    "monitor": STR, "mode": Choice("max", "min"), "patience": Int(0), "max_reductions": Int(0),
    "threshold": Num(0),
}  # fmt: skip

# --- trainer: the Lightning Trainer arguments alexlab's configs set -----------------------------
_LIMIT = Rule("num", lo=0, null=True, example=0.1)  # a fraction (<= 1.0) or a count of batches
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
              "32", "16", "bf16", "64", 32, 16, 64)  # fmt: skip
TRAINER = {
    "default_root_dir": STR, "accelerator": Choice("auto", "cpu", "gpu", "cuda"),
    "devices": ANY, "num_nodes": POS_INT, "max_epochs": Int(-1, example=5),
    "max_steps": Int(-1, example=-1), "limit_train_batches": _LIMIT, "limit_val_batches": _LIMIT,
    "limit_test_batches": _LIMIT, "fast_dev_run": ANY, "precision": Choice(*PRECISIONS),
    "log_every_n_steps": POS_INT, "check_val_every_n_epoch": OPT_POS_INT,
    "gradient_clip_val": Num(0, null=True), "deterministic": Choice(True, False, "warn"),
    "sync_batchnorm": OPT_BOOL, "enable_model_summary": BOOL, "enable_progress_bar": BOOL,
    "benchmark": OPT_BOOL, "profiler": ANY, "accumulate_grad_batches": POS_INT,
}  # fmt: skip

MODULE = {
    "num_classes": Int(1, null=True),
    "label_smoothing": Num(0, 1),
    "exclude_bias_and_norm": BOOL,
}
STRATEGY = {"find_unused_parameters": BOOL, "gradient_as_bucket_view": BOOL,
            "start_method": Choice("popen", "spawn", "fork", "forkserver"), "object": STR}  # fmt: skip
CALLBACKS = {  # (callback name, key): rule
    ("best_checkpoint", "save_top_k"): Int(-1), ("last_checkpoint", "every_n_train_steps"):
    OPT_POS_INT, ("run_images", "every_n_epochs"): POS_INT, ("run_images", "num_val_images"):
    Int(0),
}  # fmt: skip

# --- top level of train.yaml ----------------------------------------------------------------------
TOP = {
    "seed": SEED, "ckpt_path": OPT_STR, "monitor": STR, "monitor_mode": Choice("max", "min"),
    "tags": Rule("any", size=0), "scale_lr": BOOL, "lr_reference_batch": POS_INT,
    "run_name": OPT_STR, "resume": Choice("auto", "never"),
    "float32_matmul_precision": Choice("highest", "high", "medium", null=True),
    "ten_crop": BOOL,  # eval.yaml
}  # fmt: skip
GROUPS = ("model", "data", "module", "optimizer", "schedule", "trainer", "strategy", "logger",
          "callbacks", "paths", "hydra")  # fmt: skip


def check_table(prefix: str, node: Any, table: dict[str, Rule], *, closed: bool) -> None:
    """Every key of ``node`` that ``table`` knows, checked; with ``closed``, an unknown key is
    an error too (the constructor would refuse it later, with a traceback)."""
    for key in node:
        if key.startswith("_"):  # _target_, _partial_
            continue
        if key in table:
            table[key].check(f"{prefix}.{key}", node[key])
        elif closed:
            raise ConfigError(
                f"{prefix}.{key} is not a key of this {prefix} option; valid keys: "
                f"{', '.join(sorted(table))}. Remove it (or fix its spelling)."
            )
