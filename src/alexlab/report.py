"""``python -m alexlab.report RUNS_DIR``: a sweep's jobs side by side.

Reads every ``metrics.json`` under RUNS_DIR and the overrides Hydra recorded beside it; the
swept keys are those whose values differ between jobs. Writes ``report.md``, ``report.csv`` and
``report.png`` (val top-1 against the swept value(s)) into RUNS_DIR and prints the table."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import yaml

COLUMNS = [("val/acc1", "val top-1"), ("val/acc5", "val top-5")]
EXTRA = [
    ("fit_seconds", "fit s"),
    ("images_per_sec", "images/s"),
    ("global_batch_size", "global batch"),
    ("lr", "lr"),
]


def _overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    items = (yaml.safe_load(path.read_text()) or []) if path.is_file() else []
    return dict(i.split("=", 1) for i in items if "=" in i and not i.startswith("hydra"))


def collect(runs_dir: Path) -> tuple[list[str], list[dict]]:
    """``(swept keys, rows)``, one row per job, sorted by the swept values."""
    files = sorted(Path(runs_dir).rglob("metrics.json"))
    jobs = [(_overrides(f.parent), json.loads(f.read_text()), f.parent) for f in files]
    if not jobs:
        raise FileNotFoundError(f"no metrics.json under {runs_dir}")
    keys = sorted({k for overrides, _, _ in jobs for k in overrides})
    swept = [k for k in keys if len({o.get(k) for o, _, _ in jobs}) > 1] or keys
    rows = []
    for overrides, summary, job_dir in jobs:
        row = {k: overrides.get(k, "") for k in swept}
        row.update({label: summary.get("metrics", {}).get(key) for key, label in COLUMNS})
        row.update({label: summary.get(key) for key, label in EXTRA})
        row["job"] = job_dir.name
        rows.append(row)
    rows.sort(key=lambda r: [_sort_key(r[k]) for k in swept])
    return swept, rows


def _sort_key(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def markdown(swept: list[str], rows: list[dict]) -> str:
    header = ["job", *swept] + [label for _, label in COLUMNS + EXTRA]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)


LOG_KEYS = ("lr", "weight_decay")  # swept over decades: a log axis


def figure(swept: list[str], rows: list[dict]):
    """val top-1 against the first swept key: bars for categorical values (optimizer names),
    grouped by the second swept key when there is one; a line per value of the second key for
    numeric values, on a log axis for lr and weight decay."""
    # a Figure of its own, not pyplot's: no GUI backend, nothing to close
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    x_key = swept[0] if swept else "job"
    series_key = swept[1] if len(swept) > 1 else None
    series = sorted({str(r[series_key]) for r in rows} if series_key else {""}, key=_sort_key)
    pick = lambda r, s: not series_key or str(r[series_key]) == s  # noqa: E731
    label = lambda s: f"{series_key}={s}" if series_key else None  # noqa: E731
    if all(_sort_key(r[x_key])[0] == 0 for r in rows):  # numeric values
        for s in series:
            group = sorted((r for r in rows if pick(r, s)), key=lambda r: float(r[x_key]))
            xs, ys = [float(r[x_key]) for r in group], [r["val top-1"] for r in group]
            ax.plot(xs, ys, marker="o", label=label(s))
        if x_key.split(".")[-1] in LOG_KEYS and all(float(r[x_key]) > 0 for r in rows):
            ax.set_xscale("log")
    else:
        categories = sorted({str(r[x_key]) for r in rows}, key=_sort_key)
        width = 0.8 / len(series)
        for i, s in enumerate(series):
            top1 = {str(r[x_key]): r["val top-1"] for r in rows if pick(r, s)}
            xs = [c + (i - (len(series) - 1) / 2) * width for c in range(len(categories))]
            ax.bar(xs, [top1.get(c) or 0.0 for c in categories], width=width, label=label(s))
        ax.set_xticks(range(len(categories)), categories)
    ax.set(xlabel=x_key, ylabel="val top-1")
    ax.grid(alpha=0.3)
    if series_key:
        ax.legend()
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alexlab.report", description=__doc__)
    parser.add_argument("runs_dir", type=Path, help="a multirun folder, e.g. runs/multirun/<date>")
    args = parser.parse_args(argv)
    try:
        swept, rows = collect(args.runs_dir)
    except FileNotFoundError as e:
        print(f"alexlab: {e}", file=sys.stderr)
        return 2
    table = markdown(swept, rows)
    (args.runs_dir / "report.md").write_text(table + "\n")
    with (args.runs_dir / "report.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure(swept, rows).savefig(args.runs_dir / "report.png", dpi=120)
    print(table)
    print(f"\nwrote {args.runs_dir}/report.md, report.csv, report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
