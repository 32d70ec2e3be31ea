"""``python -m alexlab.predict ckpt_path=... input=IMAGE_OR_DIR``: classify images.

Prints the top-k classes with names and probabilities per image (``format=json`` for
machines, ``show_all_probs=true`` for every class). A directory is read recursively and run in
batches. Files that cannot be read, are not images, or are decompression bombs (more pixels than
``max_image_pixels``) are reported and skipped.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image

from alexlab.checks import ConfigError, check_checkpoint, report_config_errors
from alexlab.config import CONF_DIR
from alexlab.data.augment import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from alexlab.data.sources import IMAGE_EXTENSIONS
from alexlab.evaluate import load_module


@dataclass
class Predictions:
    results: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def list_inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    raise ConfigError(
        f"input={path}: no such file or directory. Pass an image or a folder of images."
    )


def open_image(path: Path, max_pixels: int) -> Image.Image:
    """Decode ``path`` as RGB; refuse images above ``max_pixels`` before decoding them."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError("not an image file (extension)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
        try:
            with Image.open(path) as img:  # the size check happens here, before decoding
                img.load()
                return img.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ValueError(f"refused: decompression bomb ({e})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous


@torch.no_grad()
def predict(cfg: DictConfig) -> Predictions:
    ckpt = check_checkpoint(cfg.ckpt_path)
    module = load_module(cfg.ckpt_path, ckpt=ckpt).eval()
    data = ckpt["hyper_parameters"]["run_config"]["data"]
    names = ckpt.get("class_names") or []
    image_size = data.get("image_size", 224)
    transform = eval_transform(
        image_size=image_size, resize_size=data.get("resize_size") or image_size,
        mean=data.get("mean") or IMAGENET_MEAN, std=data.get("std") or IMAGENET_STD,
    )  # fmt: skip
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))  # fmt: skip
    module.to(device)
    out = Predictions()
    files = list_inputs(Path(cfg.input))
    for start in range(0, len(files), cfg.batch_size):
        batch, kept = [], []
        for path in files[start : start + cfg.batch_size]:
            try:
                batch.append(transform(open_image(path, cfg.max_image_pixels)))
                kept.append(path)
            except Exception as e:  # unreadable, truncated, not an image, too large
                out.skipped.append({"file": str(path), "reason": str(e) or type(e).__name__})
        if not batch:
            continue
        probs = torch.softmax(module(torch.stack(batch).to(device)), dim=1).cpu()  # (B, classes)
        k = min(cfg.topk, probs.shape[1])
        for path, p in zip(kept, probs, strict=True):
            top = torch.topk(p, k)
            label = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
            result = {"file": str(path),
                      "top": [{"index": int(i), "class": label(int(i)), "prob": round(float(v), 6)}
                              for v, i in zip(top.values, top.indices, strict=True)]}  # fmt: skip
            if cfg.show_all_probs:
                result["probs"] = {label(i): round(float(v), 6) for i, v in enumerate(p)}
            out.results.append(result)
    return out


def render_text(out: Predictions) -> str:
    lines = []
    for r in out.results:
        lines.append(r["file"])
        lines += [f"  {t['prob']:.4f}  {t['class']} ({t['index']})" for t in r["top"]]
        if "probs" in r:
            lines += ["  all: " + ", ".join(f"{c} {p:.4f}" for c, p in r["probs"].items())]
    lines += [f"skipped {s['file']}: {s['reason']}" for s in out.skipped]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
@report_config_errors
def main(cfg: DictConfig) -> None:
    out = predict(cfg)
    if cfg.format == "json":
        print(json.dumps({"results": out.results, "skipped": out.skipped}, indent=2))
    else:
        print(render_text(out))
    if not out.results:
        sys.exit(1)  # nothing could be classified


if __name__ == "__main__":
    main()
