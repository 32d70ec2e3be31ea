"""``python -m alexlab.predict ckpt_path=... input=IMAGE_OR_DIR``: classify images.

Prints the top-k classes with names and probabilities per image (``format=json``,
``show_all_probs=true``); a directory is read recursively, in batches. Files that cannot be
read, are not images or exceed ``max_image_pixels`` are reported and skipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from alexlab.config import CONF_DIR, ConfigError, report_config_errors
from alexlab.data import images
from alexlab.data.augment import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from alexlab.data.sources import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS
from alexlab.run.checkpoint import open_checkpoint

URL_SCHEMES = ("http://", "https://", "ftp://", "s3://", "gs://", "file://")


def list_inputs(input_: str) -> list[Path]:
    if str(input_).lower().startswith(URL_SCHEMES):
        raise ConfigError(
            f"input={input_}: predict reads local files only, not URLs. Download it first "
            f"(e.g. curl -O '{input_}') and pass the file or its folder."
        )
    path = Path(input_).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    raise ConfigError(
        f"input={path}: no such file or directory. Pass an image or a folder of images."
    )


def pick_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; a device that is not there is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device={name} is not a device; use auto, cpu, cuda or cuda:N."
        ) from None
    gpus = torch.cuda.device_count()
    if device.type == "cuda" and (gpus == 0 or (device.index or 0) >= gpus):
        raise ConfigError(
            f"device={name} but {gpus} CUDA GPU(s) are visible here. Use device=auto or device=cpu."
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name}: predict runs on cpu or cuda. Use device=auto.")
    return device


@torch.no_grad()
def predict(cfg: DictConfig) -> dict[str, list[dict[str, Any]]]:
    """``{"results": [per image: file, top (index, class, prob), probs], "skipped": [...]}``."""
    device = pick_device(str(cfg.device))  # input and device first: a bad one fails at once
    files = list_inputs(str(cfg.input))
    ckpt = open_checkpoint(cfg.ckpt_path)
    module = ckpt.build_module().eval()
    data = ckpt.image_settings()
    names = ckpt.class_names
    label = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    image_size = data.get("image_size", 224)
    transform = eval_transform(
        image_size=image_size,
        resize_size=data.get("resize_size") or image_size,
        mean=data.get("mean") or IMAGENET_MEAN,
        std=data.get("std") or IMAGENET_STD,
    )
    module.to(device)
    out: dict[str, list[dict[str, Any]]] = {"results": [], "skipped": []}
    for start in range(0, len(files), cfg.batch_size):
        batch, kept = [], []
        for path in files[start : start + cfg.batch_size]:
            try:
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    raise ValueError("not an image file (extension)")
                # upright RGB as training saw it; one above max_image_pixels is refused undecoded
                image = images.decode(str(path), cfg.max_image_pixels or MAX_IMAGE_PIXELS)
                batch.append(transform(image))
                kept.append(path)
            except Exception as e:  # unreadable, truncated, not an image, too large
                out["skipped"].append({"file": str(path), "reason": str(e) or type(e).__name__})
        if not batch:
            continue
        probs = torch.softmax(module(torch.stack(batch).to(device)), dim=1).cpu()  # (B, classes)
        k = min(cfg.topk, probs.shape[1])
        for path, p in zip(kept, probs, strict=True):
            values, indices = torch.topk(p, k)
            top = zip(indices.tolist(), values.tolist(), strict=True)
            result = {
                "file": str(path),
                "top": [{"index": i, "class": label(i), "prob": round(v, 6)} for i, v in top],
            }
            if cfg.show_all_probs:
                result["probs"] = {label(i): round(v, 6) for i, v in enumerate(p.tolist())}
            out["results"].append(result)
    return out


def render_text(out: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for r in out["results"]:
        lines.append(r["file"])
        lines += [f"  {t['prob']:.4f}  {t['class']} ({t['index']})" for t in r["top"]]
        if "probs" in r:
            lines += ["  all: " + ", ".join(f"{c} {p:.4f}" for c, p in r["probs"].items())]
    lines += [f"skipped {s['file']}: {s['reason']}" for s in out["skipped"]]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
@report_config_errors
def main(cfg: DictConfig) -> None:
    out = predict(cfg)
    print(json.dumps(out, indent=2) if cfg.format == "json" else render_text(out))
    if not out["results"]:
        sys.exit(1)  # nothing could be classified


if __name__ == "__main__":
    main()
