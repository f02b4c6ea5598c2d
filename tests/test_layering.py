"""The architecture as a test: the layering in pyproject.toml's import-linter contracts holds,
a deliberate break of it is caught, the module graph has no cycle, and recipes and the site
need no torch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """Run import-linter's command on the contracts in cwd's pyproject.toml."""
    env = {"PATH": str(Path(sys.executable).parent)}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layering_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_an_import_from_the_site_into_the_pipeline_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "atlas", tmp_path / "atlas")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    writer = tmp_path / "atlas" / "site" / "writer.py"
    writer.write_text(writer.read_text() + "\nfrom ..pipeline import plan  # noqa\n")
    result = lint_imports(tmp_path, tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "atlas.site is not allowed to import atlas.pipeline" in result.stdout
    assert "Recipes and the site load no torch BROKEN" in result.stdout  # plan imports torch


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("atlas", exclude_type_checking_imports=True)
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert not cycles, "\n".join(cycles)


def test_the_public_names_stay_what_the_readme_shows():
    import atlas
    import atlas.cli
    import atlas.pipeline.build  # importing every package must not shadow a public name

    assert callable(atlas.build) and callable(atlas.visualize) and callable(atlas.objective)
    assert callable(atlas.objectives.channel)
    assert atlas.plugin.__all__  # the plugin author's one import


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A small atlas built in process, to render again without torch."""
    from conftest import TinyCNN

    import atlas as atlas_api

    root = tmp_path_factory.mktemp("torchless")
    result = atlas_api.build(
        model=TinyCNN(),
        layers=["conv1"],
        options={"input_size": 16},
        steps=1,
        max_channels=2,
        cache_dir=root / "cache",
        out_dir=root / "site",
        show_progress=False,
    )
    assert not result.failed
    return root / "site"


def test_recipes_and_sites_need_no_torch(site, tmp_path):
    manifest = json.loads((site / "manifest.json").read_text())
    images = {u["key"]: str(site / u["image"]) for u in manifest["layers"][0]["units"]}
    (tmp_path / "images.json").write_text(json.dumps(images))
    script = f"""
import json, sys
from atlas.recipe import load_recipe
from atlas.site import write_site
load_recipe()
manifest = json.loads(open({str(site / "manifest.json")!r}).read())
images = json.loads(open({str(tmp_path / "images.json")!r}).read())
write_site(manifest, images, {str(tmp_path / "again")!r})
heavy = sorted(m for m in ("torch", "torchvision", "timm") if m in sys.modules)
print(heavy)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "again" / "index.html").is_file()
    assert (tmp_path / "again" / manifest["layers"][0]["units"][0]["image"]).is_file()
