"""``python -m alexlab.data verify|fake-imagenet|prepare-imagenet|prepare``: dataset tools."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from alexlab.config import ConfigError
from alexlab.data.fake_imagenet import SIZES, write_fake_imagenet
from alexlab.data.images import MAX_IMAGE_PIXELS
from alexlab.data.prepare import Settings, prepare_tree, report
from alexlab.data.prepare_imagenet import prepare_val
from alexlab.data.sources import verify_tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alexlab.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    verify = sub.add_parser(
        "verify",
        help="list what the loaders would refuse: corrupt, truncated, "
        "empty, too large or non-image files, empty class folders, symlink loops",
    )
    verify.add_argument("root", type=Path, help="dataset root (with train/, val/) or a split")
    verify.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_IMAGE_PIXELS,
        help="refuse larger images, as data.max_image_pixels does",
    )

    fake = sub.add_parser("fake-imagenet", help="write an ImageNet-shaped JPEG tree")
    fake.add_argument("root", metavar="out", type=Path)
    fake.add_argument("--classes", type=int, default=10)
    fake.add_argument("--per-class", type=int, default=20, help="train images per class")
    fake.add_argument("--val-per-class", type=int, default=None, help="default: per-class / 5")
    fake.add_argument("--seed", type=int, default=0)
    fake.add_argument(
        "--sizes",
        choices=SIZES,
        default="typical",
        help="typical: 400-599 x 300-449; imagenet: ~400x350 mean, 3%% at 1-5 MP",
    )

    prep = sub.add_parser("prepare-imagenet", help="flat ILSVRC-2012 val/ -> class folders (links)")
    prep.add_argument("val_dir", type=Path, help="the official flat val/ folder")
    prep.add_argument("out_dir", type=Path, help="where <wnid>/<file> links go, e.g. ROOT/val")
    group = prep.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--labels", type=Path, help="text file: '<file> <wnid>' or '<wnid>' per line"
    )
    group.add_argument("--devkit", type=Path, help="ILSVRC2012_devkit_t12.tar.gz")
    prep.add_argument("--link", choices=("symlink", "hardlink"), default="symlink")

    shrink = sub.add_parser("prepare", help="a copy of a class-folder tree at training resolution")
    shrink.add_argument("src", type=Path, help="dataset root (with train/, val/) or a split")
    shrink.add_argument("dst", type=Path, help="new folder (or an interrupted run's, to continue)")
    shrink.add_argument(
        "--shorter-side",
        type=int,
        default=256,
        help="shorter side after resizing; smaller images keep their size",
    )
    shrink.add_argument("--max-side", type=int, default=None, help="cap on the longer side")
    shrink.add_argument(
        "--paper",
        action="store_true",
        help="Krizhevsky et al. 2012 §2: central square of the shorter-side resize",
    )
    shrink.add_argument("--quality", type=int, default=90, help="JPEG quality")
    shrink.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    shrink.add_argument("--no-progress", action="store_true", help="no progress bar")

    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k != "command"}  # the function's keywords
    try:
        if args.command == "verify":
            if not args.root.is_dir():
                raise ConfigError(f"{args.root}: no such directory")
            checked, problems = verify_tree(args.root, args.max_pixels)
            for p in problems:
                print(f"{p.path}: {p.reason}")
            print(f"checked {checked} files: {len(problems)} problem(s)")
            return 1 if problems else 0
        if args.command == "fake-imagenet":
            print(f"wrote {write_fake_imagenet(**options)} ({args.classes} classes)")
            return 0
        if args.command == "prepare":
            settings = Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)})
            summary = prepare_tree(
                args.src, args.dst, settings, workers=args.workers, progress=not args.no_progress
            )
            print(report(summary))
            return 1 if summary.problems else 0
        print(f"linked {prepare_val(**options)} images into {args.out_dir}/<wnid>/")
        return 0
    except (ConfigError, FileExistsError) as e:
        print(f"alexlab: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
