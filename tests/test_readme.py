"""The README's commands and recipes stay true."""

import re
import tomllib
from pathlib import Path

import pytest

from atlas.models.sources import parse
from atlas.recipe import parse_recipe
from atlas.registry import load_registry

README = (Path(__file__).parents[1] / "README.md").read_text()
RECIPES = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[model]" in b]


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


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    return README[start : README.index("\n## ", start + 3)]


@pytest.mark.e2e
def test_the_notebook_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", _section("From a notebook"), re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # the README's own examples
    assert namespace["v"].images.shape == (2, 64, 64, 3)
    for name in ("circle-minus-square.png", "warm-circles.png", "alpha.png"):
        assert (tmp_path / name).stat().st_size > 1000
