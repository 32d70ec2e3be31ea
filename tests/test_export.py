import pytest
import torch

from alexlab.export import export_onnx
from alexlab.run.checkpoint import open_checkpoint
from alexlab.train import train

ort = pytest.importorskip("onnxruntime")


def test_onnx_matches_pytorch_at_several_batch_sizes(train_cfg, tmp_path):
    summary = train(train_cfg(output_dir=tmp_path / "run"))
    out = tmp_path / "out"
    out.mkdir()
    path, diff = export_onnx(summary["best_ckpt"], out / "model.onnx")
    assert path.is_file() and diff is not None and diff < 1e-4
    assert [p.name for p in out.iterdir()] == ["model.onnx"]  # no .onnx.data beside it
    alone = tmp_path / "elsewhere" / "copy.onnx"  # the file alone, moved: still whole
    alone.parent.mkdir()
    alone.write_bytes(path.read_bytes())
    path.unlink()
    path = alone
    net = open_checkpoint(summary["best_ckpt"]).build_net().eval()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # the batch dimension is dynamic
        x = torch.randn(batch, 3, 64, 64)
        onnx_out = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
        with torch.no_grad():
            torch.testing.assert_close(onnx_out, net(x), atol=1e-4, rtol=1e-4)
