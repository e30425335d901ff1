"""polynn's packaging: the license declared the PEP 639 way, one version source, the PEP 561 marker, and a
wheel that carries them."""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

import polynn
from polynn import _version

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the source tree: pyproject.toml, LICENSE
tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the checks below read pyproject.toml


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_is_an_spdx_expression_with_its_file():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the polynn authors" in text
    # PEP 639 forbids a License :: classifier next to a license expression
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    build = _pyproject()["build-system"]["requires"]
    assert "setuptools>=77" in build  # the first setuptools that reads license-files in [project]


def test_the_version_has_one_source():
    config = _pyproject()
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "polynn._version.__version__"}
    assert polynn.__version__ is _version.__version__


def _installed_from_this_tree(dist: importlib.metadata.Distribution) -> bool:
    """Whether `dist` is this checkout: a regular install of these files, or an editable one of this folder."""
    if pathlib.Path(dist.locate_file("polynn/__init__.py")).resolve() == pathlib.Path(polynn.__file__).resolve():
        return True
    direct_url = dist.read_text("direct_url.json")
    if direct_url:
        info = json.loads(direct_url)
        tree = pathlib.Path(polynn.__file__).resolve().parent.parent
        return info.get("dir_info", {}).get("editable", False) and info.get("url") == tree.as_uri()
    return False


def test_the_installed_metadata_carries_the_version_of_the_code():
    try:
        dist = importlib.metadata.distribution("polynn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("polynn is not installed")
    if not _installed_from_this_tree(dist):
        pytest.skip(f"the installed polynn is not the one imported ({polynn.__file__})")
    assert importlib.metadata.version("polynn") == polynn.__version__


def test_the_core_carries_the_pep_561_marker():
    assert (ROOT / "polynn" / "py.typed").is_file()
    assert _pyproject()["tool"]["setuptools"]["package-data"]["polynn"] == ["py.typed"]


@pytest.mark.slow
def test_the_wheel_carries_the_license_the_marker_and_the_version(tmp_path):
    setuptools_version = importlib.metadata.version("setuptools")
    if int(setuptools_version.split(".")[0]) < 77:
        pytest.skip(f"building offline needs setuptools>=77 installed, not {setuptools_version}")
    # Built from a copy: an in-tree build would leave polynn.egg-info behind, a second "polynn"
    # distribution for importlib.metadata whenever the tree is on sys.path.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "_polynn_pytestplugin.py"):
        shutil.copy(ROOT / name, source / name)
    for name in ("polynn", "backends"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    # --no-build-isolation: the installed setuptools, so the test needs no package index
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("polynn-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"polynn-{polynn.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        license_text = archive.read(f"{info}/licenses/LICENSE").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert f"Version: {polynn.__version__}" in headers
    assert "License-Expression: MIT" in headers and "License-File: LICENSE" in headers
    assert license_text == (ROOT / "LICENSE").read_text()
    assert "polynn/py.typed" in names
    # the kit's pytest plugin: a top-level module, found through the "pytest11" entry point
    assert "_polynn_pytestplugin.py" in names
    assert "[pytest11]\npolynn = _polynn_pytestplugin" in entry_points
    assert "Classifier: Typing :: Typed" in headers
    assert 'Requires-Dist: polynn[keras-files,onnx,tensorflow,torch]; extra == "all"' in headers
    # The optional file formats are extras of their own (the core needs numpy and pluggy only).
    assert 'Requires-Dist: h5py>=3.7; extra == "keras-files"' in headers
    assert 'Requires-Dist: onnx>=1.14; extra == "onnx"' in headers
    # MPI, for data-parallel training without a framework: mpi4py, over an MPI the user brings.
    assert 'Requires-Dist: mpi4py>=4; extra == "mpi"' in headers
    assert [h for h in headers if h.startswith("Requires-Dist:") and "extra ==" not in h] == \
        ["Requires-Dist: numpy>=1.24", "Requires-Dist: pluggy>=1.5"]
