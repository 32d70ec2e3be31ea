"""``make gpu-check`` (``python3 benchmarks/gpu_check.py``): what a GPU must show, in one command.

The environment; a generated ImageNet-like tree (or ``--root``); real fits through ``python
train.py`` (DALI ``mixed`` with ``trainer=gpu``, compile off and on; the torch loader); the
no-host-sync rule over 30+ steps; the bench rows; eval, predict and ONNX export of the first fit's
checkpoint. Whatever a missing piece rules out is skipped and named. One JSON report, a dated
section appended to BENCHMARKS.md; the last line printed is the report's path. Without a GPU it
is a dry run of the same steps at a tiny size. docs/gpu.md says what each figure means.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # a plain `python3` in a checkout, nothing installed

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import torch  # noqa: E402

from benchmarks.gpu_parts import write_tree  # noqa: E402

# Sizes: a GPU (at most 8 minutes on an H100/H200 with 16 cores, budget enforced: a loan ends),
# the CPU's dry run (every step, tiny), and --tiny (the fast test: one fit, fewest images).
SIZES = {
    "gpu": dict(
        classes=10,
        per_class=400,
        val_per_class=40,
        batch=128,
        epochs=2,
        workers=16,
        model=[],
        bench_batch=256,
        bench_warmup=10,
        bench_batches=100,
        timeout=300,
        image_size=224,
        budget_min=8.0,
        sizes="imagenet",
        sync_steps=30,
        overhead_steps=100,
        bench_tiny=False,
    ),
    "cpu": dict(
        classes=2,
        per_class=32,
        val_per_class=4,
        batch=2,
        epochs=1,
        workers=2,
        model=["model.widths=[8,16,16,16,16]", "model.hidden=32", "data.resize_size=72"],
        bench_batch=4,
        bench_warmup=1,
        bench_batches=2,
        timeout=300,
        image_size=64,
        budget_min=None,
        sizes="typical",
        sync_steps=30,
        overhead_steps=20,
        bench_tiny=False,
    ),
}
# --tiny's bench rows train the ~30K-parameter network: a full-size step takes seconds on a CPU
SIZES["tiny"] = SIZES["cpu"] | dict(
    per_class=8, val_per_class=2, workers=1, sync_steps=6, overhead_steps=3, bench_tiny=True
)


def has(module: str) -> bool:
    """Importable here, checked without importing it (wandb stays out of this process)."""
    return importlib.util.find_spec(module) is not None


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def jpeg_engine() -> str:
    """Whether the GPU has a JPEG engine (what nvJPEG's hardware decoder runs on), as
    ``nvidia-smi -q -d UTILIZATION`` lists it (a ``JPEG`` line on GPUs that have one)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "-q", "-d", "UTILIZATION"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no nvidia-smi)"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip().upper().startswith("JPEG")]
    if not lines:
        return "unknown (nvidia-smi lists no JPEG line)"
    return "no" if all("N/A" in ln for ln in lines) else f"yes ({lines[0]})"


def environment(gpu: bool) -> dict:
    from alexlab.gpu import nvidia_driver

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cores": len(os.sched_getaffinity(0)),
    }
    for dist in (
        "lightning",
        "torchmetrics",
        "hydra-core",
        "omegaconf",
        "rich",
        "onnx",
        "onnxruntime",
        "wandb",
    ):
        env[dist] = version(dist)
    env["dali"] = next(
        filter(None, (version(d) for d in ("nvidia-dali-cuda130", "nvidia-dali-cuda120"))), None
    )
    env["dali"] = env["dali"] or (version("nvidia-dali") if has("nvidia.dali") else None)
    if gpu:
        props = torch.cuda.get_device_properties(0)
        env |= {
            "gpu": torch.cuda.get_device_name(0),
            "gpus": torch.cuda.device_count(),
            "compute_capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "driver": nvidia_driver(),
            "nvjpeg_hardware_decoder": jpeg_engine(),
        }
    return env


class Check:
    """The report as it grows, the clock, and the run of each step."""

    def __init__(self, args: argparse.Namespace, gpu: bool) -> None:
        self.args, self.gpu = args, gpu
        self.size = SIZES["gpu" if gpu else "tiny" if args.tiny else "cpu"]
        self.began = time.perf_counter()
        self.budget = 60 * self.size["budget_min"] if self.size["budget_min"] else float("inf")
        self.report: dict = {
            "device": "GPU" if gpu else "CPU (dry run: no GPU)",
            "steps": {},
            "skipped": {},
            "seconds": {},
        }
        self.tables: list[tuple[str, list[dict]]] = []  # (title, bench rows) for BENCHMARKS.md

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def skip(self, step: str, why: str) -> None:
        self.report["skipped"][step] = why
        print(f"[gpu-check] {step}: skipped ({why})", flush=True)

    def step(self, name: str, fn, *args, **kwargs):
        """Runs ``fn`` unless the budget is spent; its time and result (or error) recorded."""
        if self.elapsed() > self.budget:
            return self.skip(name, f"over the {self.size['budget_min']:g}-minute budget")
        print(f"[gpu-check] {name} ({self.elapsed():.0f} s in) ...", flush=True)
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # a failed step is a result; the next steps still run
            result = {"status": "fail", "error": f"{type(e).__name__}: {e}"[-2000:]}
        self.report["seconds"][name] = round(time.perf_counter() - start, 1)
        self.report["steps"][name] = result
        print(f"[gpu-check] {name}: {json.dumps(result, default=str)[:400]}", flush=True)
        return result

    def run(self, name: str, cmd: list[str]) -> subprocess.CompletedProcess:
        """A command as a user types it, output kept in <work>/<name>.log."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
            ),
        }
        done = subprocess.run(
            [sys.executable, *cmd],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.size["timeout"],
            check=False,
        )
        (self.args.out / f"{name}.log").write_text(done.stdout + done.stderr)
        return done


def fit_args(check: Check, tree: Path, name: str) -> list[str]:
    s, logger = check.size, "wandb" if has("wandb") else "csv"
    return [
        "train.py",
        "data=folder",
        f"data.root={tree}",
        f"data.batch_size={s['batch']}",
        f"trainer.max_epochs={s['epochs']}",
        f"logger={logger}",
        f"trainer={'gpu' if check.gpu else 'cpu'}",
        "data.channels_last=true",
        "model.channels_last=true",
        f"data.image_size={s['image_size']}",
        "trainer.log_every_n_steps=10",
        f"paths.runs_dir={check.args.out / 'runs'}",
        f"paths.cache_dir={check.args.out / 'cache'}",
        f"run_name={name}",
        *s["model"],
    ]


def fit(check: Check, tree: Path, name: str, extra: list[str]) -> dict:
    done = check.run(name, [*fit_args(check, tree, name), *extra])
    metrics = check.args.out / "runs" / name / "metrics.json"
    if done.returncode or not metrics.is_file():
        return {
            "status": "fail",
            "exit": done.returncode,
            "tail": (done.stderr or done.stdout)[-1500:],
        }
    m = json.loads(metrics.read_text())
    return {
        "status": "pass",
        "images_per_sec": m["images_per_sec"],
        "fit_seconds": m["fit_seconds"],
        "val_top1": m["metrics"].get("val/acc1"),
        "steps": m["global_step"],
        "checkpoint": m["best_ckpt"] or m["last_ckpt"],
    }


def fits(check: Check, tree: Path) -> dict | None:
    """The real fits; returns the first that passed (its checkpoint serves eval/predict/export)."""
    dali = check.report["environment"].get("dali") is not None
    sync_file = check.args.out / "sync.json"
    plan = {
        "fit: DALI mixed, compile off": (
            [
                "data.loader=dali",
                "model.compile=false",
                "+callbacks.sync_check._target_=benchmarks.gpu_parts.SyncCheck",
                f"+callbacks.sync_check.out={sync_file}",
            ],
            dali,
        ),
        "fit: DALI mixed, compile on": (["data.loader=dali", "model.compile=true"], dali),
        "fit: torch loader": (
            ["data.loader=torch", f"data.num_workers={check.size['workers']}"],
            True,
        ),
    }
    first = None
    for i, (name, (extra, possible)) in enumerate(plan.items()):
        if not possible:
            check.skip(name, "DALI is not installed (../shared/gpu/stage, parts 1-4)")
        elif "torch" in name and check.args.tiny:
            check.skip(name, "--tiny: one fit only (the dry run without --tiny runs it)")
        elif "compile on" in name and not (check.gpu or check.args.compile_on_cpu):
            check.skip(
                name,
                "dry run: inductor builds C++ for a CPU, a minute or more per graph "
                "(--compile-on-cpu runs it)",
            )
        else:
            result = check.step(name, fit, check, tree, f"fit{i}", extra)
            first = first or (result if result and result.get("status") == "pass" else None)
    devices = torch.cuda.device_count()
    check.skip(
        "fit: 2-process DDP",
        f"needs 2 GPUs in one run; gpu-check runs on one "
        f"({devices} visible); `make train-ddp` on a multi-GPU machine",
    )
    if dali:
        check.step("no host sync on quiet steps", sync_result, sync_file, check.size["sync_steps"])
    else:
        check.skip("no host sync on quiet steps", "rides on the DALI fit, which was skipped")
    return first


def sync_result(path: Path, min_steps: int) -> dict:
    s = json.loads(path.read_text())
    ok = s["syncs_on_quiet_steps"] == 0 and s["steps"] >= min_steps
    return {
        "status": "pass" if ok else "fail",
        **{k: v for k, v in s.items() if k != "windows"},
        "expected": f"0 syncs on quiet steps, over >= {min_steps} steps",
    }


def tasks(check: Check, tree: Path, first: dict) -> None:
    ckpt, dev = first["checkpoint"], "gpu" if check.gpu else "cpu"
    size = [f"data.image_size={check.size['image_size']}", *check.size["model"][2:]]

    def evaluate() -> dict:
        out = check.args.out / "eval"
        done = check.run(
            "eval",
            [
                "eval.py",
                f"ckpt_path={ckpt}",
                "data=folder",
                f"data.root={tree}",
                f"trainer={dev}",
                *size,
                f"hydra.run.dir={out}",
            ],
        )
        if done.returncode or not (out / "eval.json").is_file():
            return {"status": "fail", "tail": done.stderr[-1500:]}
        metrics = json.loads((out / "eval.json").read_text())["metrics"]
        top1 = metrics.get("test/acc1", metrics.get("val/acc1"))  # (a tree without test/: val)
        return {"status": "pass" if top1 is not None else "fail", "val_top1": top1}

    def predict() -> dict:
        folder = sorted((tree / "val").iterdir())[0]
        done = check.run(
            "predict",
            [
                "-m",
                "alexlab.predict",
                f"ckpt_path={ckpt}",
                f"input={folder}",
                "format=json",
                f"device={'cuda' if check.gpu else 'cpu'}",
            ],
        )
        if done.returncode:
            return {"status": "fail", "tail": done.stderr[-1500:]}
        out = json.loads(done.stdout[done.stdout.index("{") :])
        n, top1 = len(list(folder.iterdir())), [r["top"][0] for r in out["results"] if r.get("top")]
        return {
            "status": "pass" if len(out["results"]) == n else "fail",
            "images": n,
            "first": top1[:1],
        }

    def export() -> dict:
        onnx = check.args.out / "model.onnx"
        done = check.run("export", ["-m", "alexlab.export", f"ckpt_path={ckpt}", f"output={onnx}"])
        return {
            "status": "pass" if not done.returncode and onnx.is_file() else "fail",
            "said": (done.stdout or done.stderr).strip()[-400:],
        }

    todo = {"eval": evaluate, "predict": predict}
    if has("onnx") and has("onnxscript"):
        todo["export (ONNX)"] = export
    else:
        check.skip("export (ONNX)", "onnx/onnxscript not installed (the export extra)")
    # side by side: each is a short command whose time is mostly its start-up (imports)
    with ThreadPoolExecutor(len(todo)) as pool:
        list(pool.map(lambda item: check.step(*item), todo.items()))


def main(argv: list[str] | None = None) -> Path:
    from benchmarks import gpu_report

    parser = argparse.ArgumentParser(prog="python3 benchmarks/gpu_check.py", description=__doc__)
    parser.add_argument(
        "--root", type=Path, help="an ImageNet-shaped tree instead of a generated one"
    )
    parser.add_argument("--out", type=Path, help="work folder (default .cache/gpu-check/<time>)")
    parser.add_argument(
        "--benchmarks",
        type=Path,
        default=ROOT / "BENCHMARKS.md",
        help="the file the dated section is appended to",
    )
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--tiny", action="store_true", help="dry run: fewest images, one fit (the fast test)"
    )
    parser.add_argument(
        "--compile-on-cpu",
        action="store_true",
        help="dry run: also the compiled fit and ceiling (minutes on a CPU)",
    )
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    if not gpu:
        print(
            "[gpu-check] No CUDA GPU here: this is a DRY RUN of every step at a tiny size on "
            "the CPU. Its figures are not GPU figures.",
            flush=True,
        )
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    args.out = (args.out or ROOT / ".cache" / "gpu-check" / stamp).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args, gpu)
    check.report["environment"] = check.step("environment", environment, gpu)
    s = check.size
    tree = args.root
    if tree is None:
        tree = args.out / "data"
        check.step(
            "data",
            lambda: {
                "status": "pass",
                "root": str(
                    write_tree(
                        tree,
                        classes=s["classes"],
                        per_class=s["per_class"],
                        val_per_class=s["val_per_class"],
                        jobs=args.jobs,
                        sizes=s["sizes"],
                    )
                ),
                "sizes": s["sizes"],
                "images": s["classes"] * (s["per_class"] + s["val_per_class"]),
            },
        )
    first = fits(check, tree)
    if first is None:
        check.skip("eval, predict, export", "no fit passed: no checkpoint")
    else:
        tasks(check, tree, first)
    gpu_report.bench(check, tree)
    return gpu_report.write(check, stamp)


if __name__ == "__main__":
    main()
