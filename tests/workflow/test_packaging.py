"""The library works from a plain (non-editable) install: the schema and templates are package data,
nothing is found through the checkout's folder layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import REPO

CHECK = """
import archive_encoders, sys
from pathlib import Path
from archive_encoders import config
here = Path(archive_encoders.__file__).resolve()
assert here.is_relative_to(Path(sys.prefix).resolve()), here
assert config.defaults("export")["min_mean_cosine"] == 0.99
assert config.validate({"archive": {"query": "x"}, "models": [{"name": "m", "path": "org/m"}],
                        "methods": {"baseline": {}}})["clean"]["languages"] == ["ru", "en"]
import jinja2
jinja2.Environment(loader=jinja2.PackageLoader("archive_encoders", "templates")).get_template("report.md.j2")
print("ok")
"""


def test_a_wheel_installed_into_a_fresh_venv_imports_and_finds_its_data(tmp_path):
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(wheels),
    ]
    subprocess.run(
        [*build, str(source)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("archive_encoders-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, str(wheel)]
    subprocess.run(install, check=True)
    # the dependencies come from the test's environment; its editable .pth is not read from PYTHONPATH
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run([str(python), "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
    installed = Path(target) / "archive_encoders"
    assert (installed / "schema" / "config.schema.yaml").is_file()
    assert (installed / "templates" / "report.md.j2").is_file()
