"""The bench rows of ``gpu_check.py`` (the existing bench functions, GPU-sized) and its report:
one JSON file and a dated section appended to BENCHMARKS.md."""

from __future__ import annotations

import json
from typing import Any

import torch

from benchmarks import bench as b
from benchmarks import bench_loaders


def _ratios(rows: list[dict]) -> dict[str, float | None]:
    """DALI end to end against the ceiling, the torch loader against DALI, compiled against
    eager (None where a row is missing)."""
    rate = {r["what"].split(": ", 1)[1]: r["median"] for r in rows}
    ceiling, dali = rate.get("synthetic (on device)"), rate.get("dali loader")
    torch_rate, compiled = rate.get("torch loader"), rate.get("synthetic (on device), compiled")
    div = lambda a, c: round(a / c, 3) if a and c else None  # noqa: E731
    return {
        "dali_over_ceiling": div(dali, ceiling),
        "torch_over_dali": div(torch_rate, dali),
        "compiled_over_eager": div(compiled, ceiling),
    }


def _rows(rows: list[dict]) -> list[dict]:
    return [
        {"what": r["what"], "images_per_sec": round(r["median"], 1), "ratio": round(r["ratio"], 3)}
        for r in rows
    ]


def bench(check: Any, tree) -> None:
    """Synthetic ceiling (compile off/on), DALI and the torch loader end to end, DALI decoding
    alone over the hardware decoder's share, Lightning against a raw loop."""
    s, gpu = check.size, check.gpu
    bf16 = gpu and torch.cuda.is_bf16_supported()
    precision = ("bf16-mixed" if bf16 else "16-mixed") if gpu else "32-true"
    compiled = gpu or check.args.compile_on_cpu
    if not compiled:
        check.skip(
            "bench: synthetic ceiling, compiled",
            "dry run: inductor on a CPU takes minutes (--compile-on-cpu runs it)",
        )
    dali = check.report["environment"].get("dali") is not None

    def training() -> dict:
        rows = b.bench_training(
            tree,
            models=["alexnet_bn"],
            batch_size=s["bench_batch"],
            image_size=s["image_size"],
            warmup=s["bench_warmup"],
            batches=s["bench_batches"],
            runs=1,
            workers=s["workers"],
            precision=precision,
            channels_last=gpu,
            compile_modes=[False, True] if compiled else [False],
            tiny=s["bench_tiny"],
        )
        check.tables.append(("Training, AlexNet-BN (ratio: against the synthetic ceiling)", rows))
        return {"status": "pass", "precision": precision, "rows": _rows(rows), **_ratios(rows)}

    def decode() -> dict:
        rows = bench_loaders.decode_only(
            tree, threads=[s["workers"]], batch_size=s["bench_batch"], batches=s["bench_batches"]
        )
        check.tables.append(("DALI decoding alone (reader + decoder)", rows))
        return {"status": "pass", "rows": _rows(rows)}

    def overhead() -> dict:
        rows = b.bench_overhead(
            batch_sizes=[s["bench_batch"]],
            warmup=s["bench_warmup"],
            batches=s["overhead_steps"],
            runs=1,
            precision=precision,
        )
        check.tables.append(("Lightning against a raw loop (tiny AlexNet-BN, 64 px)", rows))
        return {"status": "pass", "rows": _rows(rows)}

    check.step("bench: training (ceiling, DALI, torch loader)", training)
    if dali:
        check.step("bench: DALI decode only", decode)
    else:
        check.skip("bench: DALI decode only", "DALI is not installed")
    check.step("bench: Lightning vs raw loop", overhead)


def _cell(value: Any, digits: int = 1) -> str:
    return (
        "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    )


def markdown(check: Any, stamp: str) -> str:
    r, env = check.report, check.report.get("environment") or {}
    device = env.get("gpu") or "no GPU: dry run on the CPU at a tiny size (not GPU figures)"
    lines = [
        f"\n### `make gpu-check`, {stamp}: {device}\n",
        f"Environment: Python {env.get('python')}, torch {env.get('torch')} (CUDA "
        f"{env.get('cuda')}), Lightning {env.get('lightning')}, DALI {env.get('dali')}, "
        f"{env.get('cores')} cores"
        + (
            f", driver {env.get('driver')}, compute capability "
            f"{env.get('compute_capability')}, nvJPEG hardware decoder (JPEG engine): "
            f"{env.get('nvjpeg_hardware_decoder')}"
            if env.get("gpu")
            else ""
        )
        + ".\n",
        "| step | result | images/s | val top-1 | seconds |",
        "|---|---|---:|---:|---:|",
    ]
    for name, res in r["steps"].items():
        if name == "environment" or not isinstance(res, dict):
            continue
        lines.append(
            f"| {name} | {res.get('status')} | {_cell(res.get('images_per_sec'))} | "
            f"{_cell(res.get('val_top1'), 3)} | {_cell(r['seconds'].get(name))} |"
        )
    lines += [f"| {name} | skipped: {why} | | | |" for name, why in r["skipped"].items()]
    sync = r["steps"].get("no host sync on quiet steps")
    if isinstance(sync, dict) and "steps" in sync:
        lines.append(
            f"\nHost syncs ({sync['how']}): {sync['syncs_on_quiet_steps']} on "
            f"{sync['quiet_steps']} steps that do not log (expected 0), "
            f"{sync['syncs_on_logging_steps']} on the logging steps; "
            f"{sync['steps']} steps in all."
        )
    ratios = r["steps"].get("bench: training (ceiling, DALI, torch loader)")
    if isinstance(ratios, dict) and ratios.get("status") == "pass":
        lines.append(
            f"\nRatios: DALI end to end / synthetic ceiling {ratios['dali_over_ceiling']}, "
            f"torch loader / DALI {ratios['torch_over_dali']}, compiled / eager ceiling "
            f"{ratios['compiled_over_eager']} (None: a row not run)."
        )
    for title, rows in check.tables:
        lines.append(f"\n**{title}**, one run each.\n\n{b.table(rows)}")
    lines.append(
        f"\nTotal {check.elapsed() / 60:.1f} min; report: `{check.args.out / 'report.json'}`.\n"
    )
    return "\n".join(lines)


def write(check: Any, stamp: str):
    """The JSON report and the BENCHMARKS.md section; prints the report's path last."""
    check.report["minutes"] = round(check.elapsed() / 60, 2)
    check.report["passed"] = all(
        res.get("status") == "pass"
        for res in check.report["steps"].values()
        if isinstance(res, dict) and "status" in res
    )
    path = check.args.out / "report.json"
    path.write_text(json.dumps(check.report, indent=2, default=str))
    text = markdown(check, stamp.replace("_", " "))
    with check.args.benchmarks.open("a") as f:
        f.write(text)
    print(text)
    print(
        f"[gpu-check] {'all steps passed' if check.report['passed'] else 'SOME STEPS FAILED'}; "
        f"{check.report['minutes']} min; section appended to {check.args.benchmarks}"
    )
    print(path)
    return path
