"""Every model source builds an atlas on CPU with weights made here, and no network."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import warnings

import cv2
import pytest
import timm
import torch
import torchvision
from atlas_shapes.plugin import weights_path
from conftest import TinyCNN
from helpers import atlas, atlas_build
from safetensors.torch import save_file

import atlas as atlas_api
from atlas.models.layers import catalogue
from atlas.registry import load_registry

QUICK = {"steps": 3, "max_channels": 3, "show_progress": False}


def build(tmp_path, **kwargs):
    result = atlas_api.build(
        out_dir=tmp_path / "site", cache_dir=tmp_path / "cache", **QUICK, **kwargs
    )
    assert not result.failed, result.failed
    return result.manifest


def build_cli(tmp_path, recipe_text):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(recipe_text)
    result = atlas_build(recipe, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "site" / "manifest.json").read_text())


def units(manifest, layer):
    return next(x for x in manifest["layers"] if x["name"] == layer)["units"]


def test_torchvision_classifier_with_labels_from_its_weights_metadata(tmp_path):
    manifest = build(
        tmp_path, model="torchvision/resnet18", weights="none", layers=["layer1.0.conv1", "output"]
    )
    assert manifest["model"]["input"]["size"] == [224, 224]
    assert units(manifest, "output")[0]["label"] == "tench"
    assert len(units(manifest, "layer1.0.conv1")) == 3


@pytest.mark.e2e
def test_torchvision_segmentation_output_is_its_classes(tmp_path):
    manifest = build_cli(
        tmp_path,
        """
layers = ["output"]
[model]
source = "torchvision/lraspp_mobilenet_v3_large"
options = {input_size = 64}
[render]
steps = 2
[run]
max_channels = 21
""",
    )
    labels = [u["label"] for u in units(manifest, "output")]
    assert len(labels) == 21 and labels[0] == "__background__" and "cat" in labels


def test_timm_model_with_its_pretrained_config(tmp_path):
    manifest = build(
        tmp_path, model="timm/test_convnext", weights="none", layers=["stages.0", "output"]
    )
    # timm's pretrained_cfg for test_convnext: input_size (3, 160, 160), mean = std = 0.5
    assert manifest["model"]["input"]["size"] == [160, 160]
    assert manifest["model"]["input"]["mean"] == [0.5, 0.5, 0.5]
    assert manifest["model"]["input"]["std"] == [0.5, 0.5, 0.5]
    assert manifest["render"]["size"] == [160, 160]


def test_vit_token_layers_have_a_clear_meaning(tmp_path):
    adapter = load_registry().load_model("timm/test_vit")
    layers = {layer.name: layer for layer in catalogue(adapter)}
    block = layers["blocks.0"]  # 1 class token and 10x10 patches of 64 features
    assert block.shape == (64, 10, 10) and block.channels == 64
    assert block.tokens == "101 tokens = 1 + 10×10"
    assert block.meaning == "token feature (mean over the patch tokens)"
    heads = layers["blocks.0.attn.q_norm"]  # 2 heads x 101 tokens x 32: no channel layout
    assert not heads.supported and "attention heads" in heads.reason
    manifest = build(tmp_path, model="timm/test_vit", weights="none", layers=["blocks.0"])
    assert units(manifest, "blocks.0")[0]["image"]


@pytest.mark.e2e
def test_torchscript_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    torch.jit.script(TinyCNN()).save(str(path))
    manifest = build(tmp_path, model=f"file:{path}", layers=["output"], options={"input_size": 32})
    assert len(units(manifest, "output")) == 3
    refused = atlas("layers", f"file:{path}", "--all")
    assert "conv2" in refused.stdout and "compiled TorchScript" in refused.stdout


def test_state_dict_file_with_an_architecture(tmp_path):
    manifest = build_cli(
        tmp_path,
        f"""
layers = ["output"]
[model]
source = "file:{weights_path("unet", None)}"
options = {{arch = "shapes/unet"}}
[render]
steps = 2
""",
    )
    assert units(manifest, "output")[1]["label"] == "circle"
    assert manifest["model"]["random_weights"] is False
    adapter = load_registry().load_model(f"file:{weights_path('unet', None)}", arch="shapes/unet")
    saved = torch.load(weights_path("unet", None), weights_only=True)
    for name, tensor in adapter.module.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], msg=name)


@pytest.mark.e2e
def test_random_weights_are_said_on_the_command_line_and_the_site(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        'layers = ["layer1.0.conv1"]\n[model]\nsource = "torchvision/resnet18"\n'
        "[render]\nsize = 32\nsteps = 2\n[run]\nmax_channels = 1\n"
    )
    result = atlas_build(recipe, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "torchvision/resnet18 runs with random weights" in result.stderr
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert manifest["model"]["random_weights"] is True
    assert "<strong>random weights</strong>" in (tmp_path / "site" / "index.html").read_text()
    plan = atlas_build(recipe, tmp_path, "--dry-run")
    assert "random weights; set model.weights" in plan.stdout
    asked = atlas_build(recipe, tmp_path, "--weights", "none")  # asked for: no note
    assert asked.returncode == 0 and "random weights" not in asked.stderr, asked.stderr


def test_python_callers_are_warned_of_random_weights_and_can_pass_weights(tmp_path):
    model, layers = "torchvision/squeezenet1_1", ["features.0"]
    with pytest.warns(UserWarning, match="squeezenet1_1 runs with random weights; pass weights="):
        manifest = build(tmp_path / "random", model=model, layers=layers, size=32)
    assert manifest["model"]["random_weights"] is True
    with pytest.warns(UserWarning, match="runs with random weights; pass weights="):
        atlas_api.visualize(model, "channel('features.0', 0)", size=32, steps=2, cache=False)
    path = tmp_path / "trained.pt"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = build(tmp_path / "file", model=model, weights=str(path), layers=layers, size=32)
    assert not [w for w in caught if "random weights" in str(w.message)]
    assert manifest["model"]["random_weights"] is False
    assert manifest["model"]["weights"] == str(path)


@pytest.mark.e2e
def test_state_dict_without_architecture_says_what_to_add(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(TinyCNN().state_dict(), path)
    result = atlas("layers", f"file:{path}")
    assert result.returncode == 4
    assert "holds a state dict; name its architecture with model.options.arch" in result.stderr


@pytest.mark.e2e
def test_pickled_module_needs_the_opt_in(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torchvision.models.resnet18(num_classes=3), path)
    result = atlas("layers", f"file:{path}")
    assert result.returncode == 4 and "trust_pickle = true" in result.stderr
    adapter = load_registry().load_model(f"file:{path}", trust_pickle=True)
    assert adapter.module.fc.out_features == 3


def test_grayscale_input_model(tmp_path):
    manifest = build(
        tmp_path,
        model=TinyCNN(in_channels=1),
        layers=["conv1"],
        options={"channels": 1, "input_size": 32},
    )
    assert manifest["model"]["input"]["channels"] == 1
    image = tmp_path / "site" / units(manifest, "conv1")[0]["image"]
    assert cv2.imread(str(image), cv2.IMREAD_UNCHANGED).ndim == 2


def test_timm_grayscale_model_via_options():
    adapter = load_registry().load_model("timm/test_resnet", in_chans=1)
    assert adapter.input.channels == 1 and len(adapter.input.mean) == 1


def test_cifar_size_model_renders_at_its_own_size(tmp_path):
    manifest = build(tmp_path, model=TinyCNN(), layers=["conv2"], options={"input_size": 32})
    assert manifest["render"]["size"] == [32, 32]


def test_non_square_canvas(tmp_path):
    manifest = build(tmp_path, model=TinyCNN(), layers=["conv1"], size=(24, 40))
    image = cv2.imread(str(tmp_path / "site" / units(manifest, "conv1")[0]["image"]))
    assert image.shape[:2] == (24, 40)


@pytest.mark.e2e
def test_layers_refused_with_a_reason(tmp_path):
    result = atlas("layers", "torchvision/lraspp_mobilenet_v3_large", "--all", "--json")
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)}
    assert layers["backbone"]["supported"] is False
    assert "not a tensor" in layers["backbone"]["reason"]
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'layers = ["backbone"]\n[model]\nsource = "torchvision/lraspp_mobilenet_v3_large"\n'
    )
    refused = atlas("build", str(recipe), "--dry-run", "--cache-dir", str(tmp_path / "c"))
    assert refused.returncode == 4
    assert (
        "layer 'backbone' of torchvision/lraspp_mobilenet_v3_large cannot be visualized"
        in refused.stderr
    )


@pytest.mark.e2e
def test_layers_of_resnet50_in_seconds():
    start = time.perf_counter()
    result = atlas("layers", "torchvision/resnet50", "--json")
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)}
    assert layers["layer4.2.conv3"]["channels"] == 2048
    assert layers["fc"]["channels"] == 1000 and layers["output"]["channels"] == 1000
    assert time.perf_counter() - start < 60


@pytest.fixture
def offline_env(tmp_path):
    env = {
        "TORCH_HOME": str(tmp_path / "torch"),
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "ATLAS_OFFLINE": "1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield tmp_path
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.e2e
def test_missing_torchvision_weights_offline_fail_fast_and_clearly(offline_env):
    start = time.perf_counter()
    result = atlas("layers", "torchvision/resnet18", "--weights", "DEFAULT")
    assert time.perf_counter() - start < 30
    assert result.returncode == 4
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert str(offline_env / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "--weights PATH" in message


@pytest.mark.e2e
def test_missing_timm_weights_offline_fail_fast_and_clearly(offline_env):
    start = time.perf_counter()
    result = atlas("layers", "timm/resnet18", "--weights", "pretrained")
    assert time.perf_counter() - start < 30
    assert result.returncode == 4
    assert "Hugging Face cache" in result.stderr and "--weights PATH" in result.stderr


def test_torchvision_weights_found_in_the_hub_cache(offline_env):
    checkpoints = offline_env / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(1)
    made = torchvision.models.resnet18()
    torch.save(made.state_dict(), checkpoints / "resnet18-f37072fd.pth")
    adapter = load_registry().load_model("torchvision/resnet18", "IMAGENET1K_V1")
    torch.testing.assert_close(adapter.module.fc.weight, made.fc.weight)
    assert adapter.input.size == (224, 224) and adapter.labels["output"][0] == "tench"


@pytest.mark.e2e
def test_timm_weights_found_in_the_hf_cache(offline_env):
    repo = offline_env / "hf" / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    torch.manual_seed(2)
    made = timm.create_model("test_resnet")
    weights = repo / "snapshots" / "abc123" / "model.safetensors"
    save_file(made.state_dict(), weights)
    recipe = offline_env / "timm.toml"
    recipe.write_text('layers = ["output"]\n[model]\nsource = "timm/test_resnet"\n')
    result = atlas(
        "build",
        str(recipe),
        "--weights",
        "pretrained",
        "--dry-run",
        "--json",
        "--cache-dir",
        str(offline_env / "cache"),
    )
    assert result.returncode == 0, result.stderr
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert json.loads(result.stdout)["weights_digest"] == expected
    # huggingface_hub reads HF_HUB_CACHE when imported: load in a fresh process
    code = (
        "import torch; from atlas.registry import load_registry; "
        "m = load_registry().load_model('timm/test_resnet', 'pretrained').module; "
        "print(sum(float(t.double().sum()) for t in m.state_dict().values()))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    expected_sum = sum(float(t.double().sum()) for t in made.state_dict().values())
    assert float(loaded.stdout.split()[-1]) == pytest.approx(expected_sum, rel=1e-9)


@pytest.mark.e2e
def test_model_that_rejects_the_input_size_says_how_to_fix_it(tmp_path):
    recipe = tmp_path / "vit.toml"
    recipe.write_text(
        'layers = ["output"]\n[model]\nsource = "torchvision/vit_b_16"\n'
        "options = {input_size = 64}\n"
    )
    result = atlas("build", str(recipe), "--dry-run", "--cache-dir", str(tmp_path / "c"))
    assert result.returncode == 4
    assert "torchvision/vit_b_16 fails on an input of 3×64×64" in result.stderr
    assert "model.options.input_size" in result.stderr


@pytest.mark.e2e
def test_damaged_model_file_is_named(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a model")
    result = atlas("layers", f"file:{path}")
    assert result.returncode == 4
    assert f"{path} cannot be read as a torch file" in result.stderr


def test_reachability_gives_up_after_its_timeout_on_a_silent_host():
    from atlas.models.sources.offline import reachable

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    port = silent.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the backlog: further connection attempts get no answer
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    start = time.perf_counter()
    assert reachable(f"https://127.0.0.1:{port}/weights.pth", timeout=0.5) is False
    assert 0.4 < time.perf_counter() - start < 3
    with socket.socket() as answering:
        answering.bind(("127.0.0.1", 0))
        answering.listen(8)
        assert reachable(f"http://127.0.0.1:{answering.getsockname()[1]}/w", timeout=0.5)
    for sock in [silent, *fillers]:
        sock.close()
