"""``python -m alexlab.export ckpt_path=... format=onnx``: the trained network as ONNX.

torch's dynamo-based exporter, a dynamic batch dimension; input ``images`` (B, 3, S, S)
normalised as in training, output ``logits``. One self-contained file (``external_data=False``:
AlexNet is far below ONNX's 2 GB limit). Where onnxruntime is installed the file is run once
against PyTorch. Needs the ``export`` extra: ``pip install -e '.[export]'``."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from alexlab.config import CONF_DIR, ConfigError, report_config_errors
from alexlab.run.checkpoint import open_checkpoint

FORMATS = ("onnx",)


def export_onnx(ckpt_path: str, output: str | Path | None = None) -> tuple[Path, float | None]:
    """Write the ONNX file; return its path and the largest |onnxruntime - torch| on a test
    batch (None without onnxruntime)."""
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ConfigError(
            "format=onnx needs the export extra: pip install -e '.[export]'"
        ) from None
    ckpt = open_checkpoint(ckpt_path)
    size = ckpt.image_settings().get("image_size", 224)
    net = ckpt.build_net().eval()
    output = Path(output) if output else Path(ckpt_path).with_suffix(".onnx")
    torch.onnx.export(
        net,
        (torch.randn(2, 3, size, size),),
        str(output),
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
        dynamo=True,
        external_data=False,
    )
    try:
        import onnxruntime as ort
    except ImportError:
        return output, None
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    check = torch.randn(3, 3, size, size)
    onnx_out = torch.from_numpy(session.run(None, {"images": check.numpy()})[0])
    with torch.no_grad():
        return output, float((onnx_out - net(check)).abs().max())


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
@report_config_errors
def main(cfg: DictConfig) -> None:
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format} is unknown; valid: {', '.join(FORMATS)}.")
    path, diff = export_onnx(cfg.ckpt_path, cfg.output)
    check = f"; onnxruntime vs torch max |diff| {diff:.2e}" if diff is not None else ""
    print(f"wrote {path}{check}")


if __name__ == "__main__":
    main()
