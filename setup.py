"""Ship the Hydra configs in the wheel: conf/ (its experiment/ link to experiments/ resolved
into files) is copied to alexlab/conf at build time, where ``alexlab.config`` finds it. The
repository keeps conf/ and experiments/ at the top (an editable install reads them there)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the repository's conf/
            return
        target = Path(self.build_lib) / "alexlab" / "conf"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(__file__).parent / "conf", target, symlinks=False)


setup(cmdclass={"build_py": BuildWithConfigs})
