"""Planning checks what the parser cannot: parameterization options as the parameterization
declared them, and objective arguments against the model's layers; one line, exit 4."""

import numpy as np
import pytest
from helpers import atlas

from atlas.errors import AtlasError, RecipeError
from atlas.pipeline.build import plan_build
from atlas.recipe import load_recipe
from atlas.store.cache import Cache

HEAD = 'layers = ["conv1"]\n[model]\nsource = "test/tiny"\n[render]\nsteps = 2\n'


def plan(tmp_path, registry, text):
    path = tmp_path / "r.toml"
    path.write_text(HEAD + text)
    return plan_build(load_recipe(path), Cache(tmp_path / "cache"), registry)


@pytest.mark.parametrize(
    "text, message",
    [
        ("stpes = 3", r"r.toml: unknown key 'render.stpes' \(did you mean: steps\?\)"),
        ('param = "pixel"\ndecay = 1.5', r"key 'render.decay' is an option of param 'fft', not"),
        ('decay = "fast"', r"key 'render.decay' must be float, not 'fast'"),
        ('param = "maco"\nspectrum = "nope.npy"', r"render.spectrum': file .*nope.npy does not"),
    ],
)
def test_parameterization_options_are_checked_when_planning(tmp_path, registry, text, message):
    with pytest.raises(RecipeError, match=message):
        plan(tmp_path, registry, text)


def test_a_declared_option_reaches_the_spec_as_the_recipe_set_it(tmp_path, registry):
    planned = plan(tmp_path, registry, "decay = 2")
    assert planned.units[0].main.spec["render"]["param_options"] == {"decay": 2.0}
    plain = plan(tmp_path, registry, "")
    assert plain.units[0].main.spec["render"]["param_options"] == {}  # old keys stay valid


def test_a_spectrum_of_the_wrong_shape_is_one_line_at_planning(tmp_path, registry):
    np.save(tmp_path / "s.npy", np.ones((1, 8, 5), np.float32))  # for grey images, not RGB
    with pytest.raises(RecipeError) as caught:
        plan(tmp_path, registry, 'param = "maco"\nspectrum = "s.npy"')
    message = str(caught.value)
    assert "key 'render.spectrum'" in message and "(C=3, H, W//2+1)" in message
    assert "\n" not in message


def test_a_direction_of_the_wrong_length_is_refused_at_planning(tmp_path, registry):
    text = '[[pictures]]\nname = "d"\nobjective = "direction(\'conv1\', [1.0, 2.0])"\n'
    with pytest.raises(AtlasError, match=r"picture 'd'.*2 values but layer 'conv1' has 8"):
        plan(tmp_path, registry, text)
    np.save(tmp_path / "v.npy", np.ones(3, np.float32))
    text = text.replace("[1.0, 2.0]", "'v.npy'")
    with pytest.raises(AtlasError, match=r"3 values but layer 'conv1' has 8 channels"):
        plan(tmp_path, registry, text)


@pytest.mark.e2e
def test_the_cli_exits_4_on_a_wrong_direction(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'layers = ["output"]\n[model]\nsource = "shapes/unet"\n[render]\nsteps = 1\n'
        '[[pictures]]\nname = "d"\nobjective = "direction(\'output\', [1.0, 2.0])"\n'
    )
    result = atlas("build", str(recipe), "--dry-run", "--cache-dir", str(tmp_path / "c"))
    assert result.returncode == 4, result.stderr
    assert "2 values but layer 'output' has 7 channels" in result.stderr.strip().splitlines()[-1]


def test_a_non_callable_objective_is_refused_at_once():
    import atlas as atlas_api

    with pytest.raises(TypeError, match="not 42"):
        atlas_api.objective(42, layers=["output"])


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[[pictures]]\nname = "p"\nobjective = "channel(\'conv1\', 0)"\ndiversity = 4\n',
            r"unknown key 'pictures.diversity'",
        ),
        ("regularizer = {tv = 1}", r"unknown key 'render.regularizer' \(did you mean: regulari"),
    ],
)
def test_keys_no_table_takes_are_refused_when_parsing(tmp_path, text, message):
    path = tmp_path / "r.toml"
    path.write_text(HEAD + text)
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)


def test_settling_twice_changes_nothing(tmp_path, registry, adapter):
    from atlas.pipeline.settle import settle

    np.save(tmp_path / "s.npy", np.ones((3, 8, 5), np.float32))
    planned = plan(tmp_path, registry, 'param = "maco"\nspectrum = "s.npy"')
    settings = planned.recipe.render
    assert settle(settings, adapter, registry, "again") == settings


def test_a_picture_objective_without_a_spec_is_refused(tmp_path):
    from conftest import TinyCNN

    import atlas as atlas_api

    unnamed = atlas_api.objective(lambda acts: acts["conv1"].mean((1, 2, 3)), layers=["conv1"])
    with pytest.raises(AtlasError, match=r"picture 'p': its objective has no spec.*name="):
        atlas_api.build(
            model=TinyCNN(),
            layers=["conv1"],
            options={"input_size": 16},
            pictures=[{"name": "p", "objective": unnamed}],
            cache_dir=tmp_path,
            out_dir=tmp_path / "s",
        )
