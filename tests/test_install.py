"""`pip install .` (a wheel, not editable) gives console scripts that run from any directory:
the configs travel inside the package (setup.py copies conf/ to alexlab/conf)."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from subproc import ROOT, run

SOURCES = ["src", "conf", "experiments", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_wheel_installed_elsewhere_trains_from_another_directory(tmp_path):
    # 1) the wheel, built from a copy of the sources (the build leaves nothing in the checkout)
    tree = tmp_path / "tree"
    for name in SOURCES:
        src, dst = ROOT / name, tree / name
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(src, dst, symlinks=True, ignore=ignore)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    build = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(tree),
        ],
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("alexlab-*.whl")

    # 2) a fresh venv that sees this environment's dependencies (nothing is downloaded) but not
    # its alexlab: a plain path entry, whose .pth files (the editable install) are not read
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    deps = sysconfig.get_paths()["purelib"]
    (Path(purelib.stdout.strip()) / "alexlab_deps.pth").write_text(deps + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    # 3) the console script, from an unrelated directory
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [python, "-c", "import alexlab.config as c; print(c.CONF_DIR)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
    )
    assert where.stdout.strip() == str(Path(purelib.stdout.strip()) / "alexlab" / "conf")
    assert (Path(where.stdout.strip()) / "experiment" / "krizhevsky2012.yaml").is_file()
    result = subprocess.run(
        [venv / "bin" / "alexlab-train", "trainer.fast_dev_run=true", "logger=none"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((work / "runs").glob("*/metrics.json"))
    help_ = subprocess.run(
        [venv / "bin" / "alexlab-train", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
    )
    assert "experiment: cifar10_alexnet, krizhevsky2012" in help_.stdout
