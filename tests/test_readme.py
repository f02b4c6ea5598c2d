"""The README's and the docs' commands, recipes and examples stay true."""

import re
import tomllib
from pathlib import Path

import pytest

from atlas.models.sources import parse
from atlas.recipe import parse_recipe
from atlas.registry import load_registry

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
RECIPES = [
    block
    for text in [README, *DOCS.values()]
    for block in re.findall(r"```toml\n(.*?)```", text, re.S)
    if "[model]" in block
]


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1).splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.parametrize("block", RECIPES, ids=lambda b: b.splitlines()[0])
def test_readme_recipes_are_valid(block):
    recipe = parse_recipe(tomllib.loads(block), "README.md")
    namespace, _ = parse(recipe.model)
    assert namespace in load_registry().names("models")


def test_every_link_of_the_readme_and_docs_resolves():
    for name, text in [("README.md", README), *((f"docs/{n}", t) for n, t in DOCS.items())]:
        folder = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", text):
            if not target.startswith("http"):
                assert (folder / target).exists(), f"{name} links to {target}"


@pytest.mark.e2e
def test_the_readme_notebook_example_runs(tmp_path, monkeypatch):
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})  # the README's own example
    assert (tmp_path / "circle-minus-square.png").stat().st_size > 1000
    assert (tmp_path / "site" / "python-Sequential" / "index.html").is_file()


@pytest.mark.e2e
def test_the_notebook_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOCS["python.md"], re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python.md", "exec"), namespace)  # the page's own examples
    assert namespace["v"].images.shape == (2, 64, 64, 3)
    for name in (
        "circle-minus-square.png",
        "warm-circles.png",
        "alpha.png",
        "square-from-seed.png",
    ):
        assert (tmp_path / name).stat().st_size > 1000
    shares = [u["judged_share"] for u in namespace["judged"].manifest["layers"][0]["units"]]
    assert all(0.0 <= share <= 1.0 for share in shares)
