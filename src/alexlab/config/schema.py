"""Every setting of every config group, declared once: type, range or choices, default, doc.

One strict pydantic model per ``_target_`` a group option names (``SCHEMAS``); the YAML selects
and overrides (docs/config.md). No torch imported here."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# conv1 11/4 (padding 2) and three 3/2 max-pools leave a 1x1 map at 63 px, none below
# (tests/models/test_alexnet.py checks it against the network)
MIN_IMAGE_SIZE = 63

PosInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
CountOrAll = Annotated[int, Field(ge=-1)]  # -1: all, or no limit
PosFloat = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Prob = Annotated[float, Field(ge=0, le=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy's and Lightning's seed range
POOLS = {"why": "AlexNet's three 3/2 max-pools"}  # said in the error message
ImageSize = Annotated[int, Field(ge=MIN_IMAGE_SIZE, json_schema_extra=POOLS)]
Limit = Prob | Count | None  # a fraction of the batches (a float) or a count (an int)
Precision = Literal[
    Literal["32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"],
    Literal["32", "16", "bf16", "64", 32, 16, 64],  # the short forms Lightning also takes
]


def Of(n: int, item: Any) -> Any:  # noqa: N802 (reads as a type)
    """A list of exactly ``n`` items (``n=0``: any number) of type ``item``."""
    return Annotated[list[item], Field(min_length=n, max_length=n or None)]


def F(default: Any, doc: str, **kw: Any) -> Any:  # noqa: N802
    """A field: its default and its one-line doc (``examples=[...]`` when the default is null)."""
    return Field(default, description=doc, **kw)


class Closed(BaseModel):
    """An option whose every key is declared: an unknown key is refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Open(Closed):
    """A third-party constructor with more arguments than alexlab sets: the others pass."""

    model_config = ConfigDict(extra="allow")


# --- model: alexlab.models.alexnet.build (AlexNet's arguments and three of its own) ------------
class Model(Closed):
    num_classes: PosInt | None = F(1000, "classifier outputs", examples=[10])
    widths: Of(5, PosInt) = F([96, 256, 384, 384, 256], "output channels of conv1..conv5")
    hidden: PosInt = F(4096, "units of each hidden fully connected layer")
    dropout: Prob = F(0.5, "dropout before each hidden layer (2012 §4.2)")
    norm: Literal["lrn", "bn", "none"] = F("lrn", "LRN (2012), BatchNorm (You 2017) or none")
    groups: Literal[1, 2] = F(1, "2: the 2012 paper's two towers in conv2, conv4, conv5")
    input_size: ImageSize = F(224, "input side; 227 sets conv1's padding to 0", examples=[224])
    pool_size: PosInt = F(6, "side of the adaptive average pool before the classifier")
    init: Literal["paper", "default"] = F("paper", "N(0, 0.01) and bias 1 (2012 §5), or torch's")
    weights: str | None = F(None, "a state_dict file to load", examples=["/path/weights.pth"])
    channels_last: bool = F(False, "NHWC weights; follows data.channels_last")
    compile: bool = F(False, "torch.compile the network")


# --- data: one model per data module -------------------------------------------------------------
class Batches(Closed):
    num_classes: PosInt | None = F(None, "classes; null: counted from the data", examples=[10])
    batch_size: PosInt = F(128, "images per device per step", examples=[64])
    global_batch_size: PosInt | None = F(
        None, "images per optimizer step on all devices (accumulation derived)", examples=[512]
    )
    image_size: ImageSize = F(224, "side of the crop the network sees")


class ImageData(Batches):
    root: str | None = F(None, "dataset root (train/, val/, test/)", examples=["/data/imagenet"])
    loader: Literal["auto", "dali", "torch"] = F("auto", "auto: DALI where it imports")
    num_workers: Count = F(4, "torch loader worker processes per device")
    resize_size: PosInt = F(256, "shorter side before the eval centre crop")
    crop: Literal["random_resized", "paper"] = F("random_resized", "train crop (2012 §4.1: paper)")
    scale: Of(2, Annotated[float, Field(gt=0, le=1)]) = F([0.08, 1.0], "random crop's area range")
    ratio: Of(2, PosFloat) = F([0.75, 4 / 3], "random crop's aspect range")
    hflip_prob: Prob = F(0.5, "horizontal flip probability")
    lighting_std: NonNeg = F(0.0, "PCA colour noise std (2012 §4.1: 0.1)", examples=[0.1])
    mean: Of(3, Prob) = F([0.485, 0.456, 0.406], "per-channel mean in [0, 1] (ImageNet's)")
    std: Of(3, PosFloat) = F([0.229, 0.224, 0.225], "per-channel std in [0, 1] (ImageNet's)")
    channels_last: bool = F(False, "NHWC batches and weights (tensor cores)")
    fp16: bool = F(False, "images reach the module as float16 (precision=16-mixed)")
    ten_crop: bool = F(False, "test batches hold the 2012 paper's 10 views per image")
    dali_threads: PosInt | None = F(None, "DALI CPU threads per device", examples=[4])
    dali_prefetch: PosInt = F(2, "batches DALI prepares ahead")
    dali_fast_idct: bool = F(True, "train decoding with the fast integer IDCT (CPU)")
    dali_hw_decoder_load: Prob = F(0.65, "share of images for the GPU's JPEG engine (DALI's)")
    seed: Seed = F(0, "seed of the epoch order and the augmentation")
    skip_corrupt: bool = F(False, "skip and count unusable images (torch loader)")
    max_image_pixels: PosInt = F(89_478_485, "larger images are refused (PIL's bomb limit)")
    pin_memory: bool = F(True, "page-locked host batches (torch loader)")


class CifarData(Batches):
    root: str | None = F(None, "folder holding cifar-10-batches-py/", examples=["/data/cifar10"])
    download: bool = F(False, "fetch the files when missing")
    num_classes: Literal[10] | None = F(10, "CIFAR-10 has 10")
    image_size: ImageSize = F(227, "upsampled side (seed 003's AlexNet input)")
    hflip_prob: Prob = F(0.5, "horizontal flip probability")
    mean: Of(3, Prob) = F([0.4914, 0.4822, 0.4465], "per-channel mean in [0, 1]")
    std: Of(3, PosFloat) = F([0.2470, 0.2435, 0.2616], "per-channel std in [0, 1]")
    num_workers: Count = F(0, "loader worker processes (in memory: 0 is usually fastest)")


class SyntheticData(Batches):
    num_classes: PosInt | None = F(1000, "classes of the random labels")
    batch_size: PosInt = F(256, "images per device per step")
    steps_per_epoch: PosInt = F(100, "training batches per epoch")
    val_steps: Count = F(10, "validation batches")
    seed: Seed = F(0, "seed of the random batch")


# --- data.source: a _partial_ the data module calls with data.root ------------------------------
class FolderSource(Closed):
    train_split: str = F("train", "sub-folder of the training images")
    val_split: str = F("val", "sub-folder of the validation images")
    test_split: str | None = F(None, "sub-folder of the test images", examples=["test"])


class DigitsSource(Closed):
    seed: Seed = F(0, "seed of the stratified split")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = F(0.2, "share of images held out")
    size: Annotated[int, Field(ge=8)] = F(32, "side of the written JPEGs")


# --- module, optimizer, schedule ---------------------------------------------------------------
class Module(Closed):
    num_classes: PosInt | None = F(None, "classifier outputs (data.num_classes)", examples=[10])
    label_smoothing: Prob = F(0.0, "cross-entropy label smoothing", examples=[0.1])
    exclude_bias_and_norm: bool = F(True, "no decay (nor LARS) on biases and norm parameters")


class Kernels(Closed):
    foreach: bool | None = F(None, "multi-tensor kernels; null: torch chooses")
    fused: bool | None = F(None, "fused kernels; null: torch chooses")


class SGD(Kernels):  # defaults: torch's; the recipes (conf/optimizer/*.yaml) set theirs
    lr: PosFloat = F(1e-3, "learning rate at lr_reference_batch", examples=[0.01])
    momentum: Prob = F(0.0, "momentum (2012 §5: 0.9)", examples=[0.9])
    weight_decay: NonNeg = F(0.0, "L2 weight decay (2012 §5: 5e-4)", examples=[5e-4])
    nesterov: bool = F(False, "Nesterov momentum")
    dampening: Prob = F(0.0, "momentum dampening")


class Adam(Kernels):
    lr: PosFloat = F(1e-3, "learning rate")
    betas: Of(2, Prob) = F([0.9, 0.999], "running-average coefficients")
    weight_decay: NonNeg = F(0.0, "L2 weight decay", examples=[1e-4])
    eps: PosFloat = F(1e-8, "denominator term")
    amsgrad: bool = F(False, "AMSGrad variant")


class AdamW(Adam):
    weight_decay: NonNeg = F(0.01, "decoupled weight decay (Loshchilov & Hutter 2019)")


class LARS(Closed):
    lr: PosFloat = F(2.0, "learning rate (You 2017 Table 3: 2 at batch 512)")
    momentum: Prob = F(0.9, "momentum")
    weight_decay: NonNeg = F(0.0, "weight decay (You 2017 §5: 5e-4)", examples=[5e-4])
    trust_coefficient: PosFloat = F(0.001, "eta of Algorithm 1")
    eps: NonNeg = F(0.0, "denominator term of the trust ratio")
    trust_clip: bool = F(False, "LARC: effective lr = min(lr x local lr, lr)")


class Schedule(Closed):
    kind: Literal["constant", "cosine", "step", "poly", "plateau"] = F("cosine", "the decay")
    warmup_epochs: NonNeg = F(0.0, "linear warmup (Goyal 2017)", examples=[5])
    milestones_epochs: Of(0, NonNeg) = F([], "step: epochs at which lr x gamma", examples=[[30]])
    gamma: PosFloat = F(0.1, "step/plateau: the factor")
    power: PosFloat = F(2.0, "poly: the exponent (You 2017 §5)")
    min_factor: Prob = F(0.0, "cosine/poly: the final lr / lr")
    monitor: str = F("val/acc1", "plateau: the metric")
    mode: Literal["max", "min"] = F("max", "plateau: better is higher or lower")
    patience: Count = F(5, "plateau: epochs without improvement before a cut")
    max_reductions: Count = F(3, "plateau: cuts in all (2012 §5: 3)")
    threshold: NonNeg = F(1e-4, "plateau: the least improvement that counts")


# --- trainer and strategy (Lightning's: arguments alexlab does not set pass through) ------------
class Trainer(Open):
    default_root_dir: str = F(".", "Lightning's root (the run directory)")
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = F("auto", "auto: a GPU when visible")
    devices: PosInt | Literal[-1, "auto"] | list[Count] = F(1, "a count, -1 or auto, or indices")
    num_nodes: PosInt = F(1, "machines")
    max_epochs: CountOrAll = F(5, "epochs (-1: max_steps decides)")
    max_steps: CountOrAll = F(-1, "optimizer steps (-1: max_epochs decides)")
    limit_train_batches: Limit = F(None, "a fraction or a count of batches", examples=[0.1])
    limit_val_batches: Limit = F(None, "a fraction or a count of batches", examples=[0.1])
    limit_test_batches: Limit = F(None, "a fraction or a count of batches", examples=[0.1])
    fast_dev_run: bool | Count = F(False, "true: one micro-batch per stage, a smoke run")
    precision: Precision = F("32-true", "numeric precision")
    log_every_n_steps: PosInt = F(10, "optimizer steps between logged values")
    check_val_every_n_epoch: PosInt | None = F(1, "epochs between validations")
    num_sanity_val_steps: CountOrAll = F(2, "val batches run before training (0: none, -1: all)")
    gradient_clip_val: NonNeg | None = F(None, "gradient norm clip", examples=[1.0])
    deterministic: bool | Literal["warn"] = F(False, "deterministic algorithms")
    sync_batchnorm: bool | None = F(None, "null: on for BatchNorm under DDP on CUDA")
    enable_model_summary: bool = F(False, "Lightning's summary (alexlab prints its own)")
    enable_progress_bar: bool = F(True, "the progress bar")
    benchmark: bool | None = F(None, "cudnn.benchmark", examples=[True])
    profiler: Any = F(None, "debug=profile sets one")


class DDP(Open):
    find_unused_parameters: bool = F(False, "DDP searches for unused parameters")
    gradient_as_bucket_view: bool = F(True, "gradients share DDP's buckets")
    start_method: Literal["popen", "spawn", "fork", "forkserver"] = F("popen", "how ranks start")


class SingleDevice(Closed):
    object: str = F("auto", "Lightning's strategy name")


# --- callbacks: the settings a user changes (the rest pass to the callback) ---------------------
class BestCheckpoint(Open):
    save_top_k: CountOrAll = F(1, "best checkpoints kept (-1: all)")


class LastCheckpoint(Open):
    every_n_train_steps: PosInt | None = F(None, "also save every N steps", examples=[1000])


class RunImages(Open):
    every_n_epochs: PosInt = F(1, "epochs between conv1 filter images")
    num_val_images: Count = F(8, "val images shown with their predictions")


# --- top level of train.yaml and eval.yaml --------------------------------------------------------
class Top(Closed):
    seed: Seed = F(42, "seed of everything")
    run_name: str | None = F(None, "the run directory's name", examples=["my-run"])
    resume: Literal["auto", "never"] = F("auto", "continue from the run's last.ckpt")
    ckpt_path: str | None = F(None, "start from a checkpoint", examples=["runs/x/last.ckpt"])
    monitor: str = F("val/acc1", "the metric of the best checkpoint and metrics.json")
    monitor_mode: Literal["max", "min"] = F("max", "better is higher or lower")
    tags: Of(0, Any) = F([], "logger tags")
    float32_matmul_precision: Literal["highest", "high", "medium"] | None = F(
        "high", "CUDA float32 matmuls (high: TF32)"
    )
    scale_lr: bool = F(False, "lr x global batch / lr_reference_batch (Goyal 2017)")
    lr_reference_batch: PosInt = F(256, "the batch optimizer.lr is given for")
    test: bool = F(True, "run the test stage where the data has a test split")
    ten_crop: bool = F(False, "eval: the 2012 paper's 10-crop test")


# group -> _target_ -> schema (first: default); data first, the order they are checked in:
# model and module interpolate its keys
SCHEMAS: dict[str, dict[str, type[Closed]]] = {
    "data": {
        "alexlab.data.datamodule.ImageDataModule": ImageData,
        "alexlab.data.cifar.CIFAR10DataModule": CifarData,
        "alexlab.data.synthetic.SyntheticDataModule": SyntheticData,
    },
    "data.source": {
        "alexlab.data.sources.FolderSource": FolderSource,
        "alexlab.data.sources.ImageNetSource": FolderSource,
        "alexlab.data.sources.DigitsSource": DigitsSource,
    },
    "model": {"alexlab.models.alexnet.build": Model},
    "optimizer": {
        "torch.optim.SGD": SGD,
        "torch.optim.Adam": Adam,
        "torch.optim.AdamW": AdamW,
        "alexlab.optim.lars.LARS": LARS,
    },
    "schedule": {"alexlab.optim.schedules.warmup_lr_scheduler": Schedule},
    "module": {"alexlab.module.ClassificationModule": Module},
    "trainer": {"lightning.pytorch.Trainer": Trainer},
    "strategy": {"lightning.pytorch.strategies.DDPStrategy": DDP, "builtins.str": SingleDevice},
}
CALLBACKS = {
    "best_checkpoint": BestCheckpoint,
    "last_checkpoint": LastCheckpoint,
    "run_images": RunImages,
}
# the top-level groups: those with a schema, then the others
GROUPS = (*(g for g in SCHEMAS if "." not in g), "logger", "callbacks", "paths", "hydra")
