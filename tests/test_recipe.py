import pytest

from atlas.errors import RecipeError
from atlas.recipe import load_recipe


def write(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


def test_embedded_demo_recipe_loads():
    recipe = load_recipe()
    assert recipe.name == "shapes" and recipe.model == "shapes/unet"
    assert "output" in recipe.layers and len(recipe.layers) >= 3


def test_values_are_read(tmp_path):
    path = write(
        tmp_path,
        """
layers = ["conv1"]
[model]
source = "test/tiny"
[render]
size = [24, 40]
steps = 7
transforms = {pad = 4, jitter = 2}
regularizers = {tv = 0.5}
[run]
batch_size = 3
""",
    )
    recipe = load_recipe(path)
    assert recipe.render.size == (24, 40) and recipe.render.steps == 7
    assert recipe.render.transforms.pad == 4 and recipe.render.regularizers == {"tv": 0.5}
    assert recipe.batch_size == 3 and recipe.name == "r"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'layers = ["a"]\n[model]\nsource = "x/y"\n[render]\nsteps = "many"',
            r"key 'render.steps' must be int",
        ),
        ('layers = ["a"]', r"missing key 'model.source'"),
        ('[model]\nsource = "x/y"', r"key 'layers' must be a non-empty list"),
        ("layers = [", r"r.toml: not valid TOML"),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, text))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RecipeError, match=r"cannot read recipe .*nope\.toml"):
        load_recipe(tmp_path / "nope.toml")


def test_a_picture_with_another_param_takes_its_own_defaults(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        'layers = ["output"]\n[model]\nsource = "shapes/unet"\n'
        "[render]\nsize = 64\nlr = 0.02\ndecay = 2.0\ntransforms = false\nsteps = 99\n"
        '[[pictures]]\nname = "maco"\nobjective = "channel(\'output\', 1)"\nparam = "maco"\n'
        '[[pictures]]\nname = "fft"\nobjective = "channel(\'output\', 1)"\n'
    )
    maco, fft = (p.render for p in load_recipe(path).pictures)
    assert (maco.lr, maco.param_options, maco.transforms) == (None, {}, "default")
    assert (maco.steps, maco.size) == (99, (64, 64))  # what every parameterization shares
    assert (fft.lr, fft.param_options, fft.transforms) == (0.02, {"decay": 2.0}, None)
