"""What a wheel of the project holds: every subpackage and every template, so an installed
copy (a GPU box, `pip install .`) runs as the editable one does."""

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """Return the folder a listed package is built from."""
    mapped = SETUPTOOLS.get("package-dir", {})
    return ROOT / mapped.get(package, package.replace(".", "/"))


def test_every_python_package_under_atlas_is_listed():
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "atlas").rglob("__init__.py")
    }
    missing = found - set(SETUPTOOLS["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_every_data_file_of_a_listed_package_is_packaged():
    for package in SETUPTOOLS["packages"]:
        folder = _folder(package)
        assert folder.is_dir(), f"{package}: no folder {folder}"
        patterns = ["*.py", *SETUPTOOLS.get("package-data", {}).get(package, [])]
        files = [p for p in folder.iterdir() if p.is_file() and p.suffix != ".pyc"]
        left = [p.name for p in files if not any(fnmatch.fnmatch(p.name, g) for g in patterns)]
        assert not left, f"{package}: {left} would not be in the wheel (package-data)"
