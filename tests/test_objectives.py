import pytest
import torch

from atlas.engine import objectives as obj


def acts():
    torch.manual_seed(0)
    return {"a": torch.randn(3, 5, 4, 4), "b": torch.randn(3, 7)}


def test_channel_picks_one_channel_per_image():
    a = acts()
    score = obj.channel("a", [0, 2, 4])(a)
    expected = torch.stack([a["a"][0, 0].mean(), a["a"][1, 2].mean(), a["a"][2, 4].mean()])
    torch.testing.assert_close(score, expected)


def test_linear_layer_units_are_channels():
    a = acts()
    torch.testing.assert_close(obj.channel("b", 3)(a), a["b"][:, 3])


def test_algebra_matches_the_arithmetic():
    a = acts()
    combined = obj.channel("a", 1) + 2 * obj.channel("b", 0) - obj.channel("a", 3)
    expected = a["a"][:, 1].mean((1, 2)) + 2 * a["b"][:, 0] - a["a"][:, 3].mean((1, 2))
    torch.testing.assert_close(combined(a), expected)
    assert combined.layers == {"a", "b"}
    assert [t["weight"] for t in combined.spec["terms"]] == [1.0, 2.0, -1.0]


def test_sum_of_many_objectives_does_not_recurse():
    a = acts()
    total = sum(obj.channel("b", i % 7) for i in range(2800))
    torch.testing.assert_close(total(a), a["b"].sum(1) * 400, rtol=1e-4, atol=1e-2)


def test_mask_weights_the_spatial_mean():
    a = acts()
    mask = torch.zeros(4, 4)
    mask[:2] = 1
    score = obj.channel("a", 0, mask=mask.numpy())(a)
    torch.testing.assert_close(score, a["a"][:, 0, :2].mean((1, 2)))


def test_batch_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 channels for a batch of 3"):
        obj.channel("a", [0, 1])(acts())


def test_token_sequences_give_one_feature_per_channel_averaged_over_tokens():
    tokens = torch.randn(3, 5, 7)  # batch, tokens, features
    score = obj.channel("t", [0, 6, 2])({"t": tokens})
    torch.testing.assert_close(
        score, torch.stack([tokens[i, :, c].mean() for i, c in enumerate([0, 6, 2])])
    )
