"""Encoders: registry, parameter counts, shapes, and length-aware pooling."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from dino_speech.errors import ConfigError
from dino_speech.models.pooling import masked_mean_std
from dino_speech.models.registry import build_encoder, list_encoders

ALL = [
    "ecapa_c512",
    "ecapa_c1024",
    "resnet34",
    "lresnet34",
    "ecapa_tiny",
    "resnet_tiny",
    "speechbrain_ecapa",
    "logmel_stats",
]
SMALL = ["ecapa_tiny", "resnet_tiny", "lresnet34"]


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registry_lists_all_names() -> None:
    assert list_encoders() == sorted(ALL)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        build_encoder("ecapa_c2048")
    for name in ALL:
        assert name in str(info.value)


def test_unknown_kwarg_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="does not take chanels"):
        build_encoder("ecapa_tiny", chanels=32)


@pytest.mark.parametrize(
    ("name", "millions", "tol"),
    [("ecapa_c512", 6.2, 0.1), ("resnet34", 6.6, 0.1), ("lresnet34", 2.0, 0.1)],
)
def test_parameter_counts_match_reference_sizes(name: str, millions: float, tol: float) -> None:
    assert num_params(build_encoder(name)) / 1e6 == pytest.approx(millions, abs=tol)


@pytest.mark.parametrize(("name", "dim"), [("ecapa_c512", 192), ("resnet34", 256)])
def test_embedding_dims(name: str, dim: int) -> None:
    encoder = build_encoder(name, feat_dim=40)
    assert encoder.embed_dim == dim
    with torch.no_grad():
        assert encoder.eval()(torch.randn(2, 50, 40)).shape == (2, dim)


def test_kwargs_override_presets() -> None:
    encoder = build_encoder("resnet_tiny", feat_dim=24, embed_dim=32)
    assert encoder.embed_dim == 32
    assert encoder(torch.randn(3, 40, 24)).shape == (3, 32)


@pytest.mark.parametrize("name", SMALL)
def test_padded_item_embeds_like_unpadded(name: str) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(name, feat_dim=40).eval()
    short = torch.randn(1, 61, 40)
    other = torch.randn(1, 97, 40)
    padded = torch.cat([torch.cat([short, 5 * torch.randn(1, 36, 40)], dim=1), other])
    with torch.no_grad():
        alone = encoder(short)
        batched = encoder(padded, torch.tensor([61, 97]))
        other_alone = encoder(other)
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched[1:], other_alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", SMALL)
def test_padding_changes_embedding_without_lengths(name: str) -> None:
    # The masked test above would pass trivially if padding never mattered.
    torch.manual_seed(0)
    encoder = build_encoder(name, feat_dim=40).eval()
    short = torch.randn(1, 61, 40)
    padded = torch.cat([short, 5 * torch.randn(1, 36, 40)], dim=1)
    with torch.no_grad():
        assert not torch.allclose(encoder(short), encoder(padded), atol=1e-3)


@pytest.mark.parametrize("name", SMALL)
def test_backward_and_deepcopy(name: str) -> None:
    encoder = build_encoder(name, feat_dim=40)
    out = encoder(torch.randn(4, 50, 40), torch.tensor([50, 40, 30, 20]))
    out.pow(2).sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    twin = copy.deepcopy(encoder).eval()
    encoder.eval()
    x = torch.randn(2, 50, 40)
    lengths = torch.tensor([50, 31])
    with torch.no_grad():
        torch.testing.assert_close(twin(x, lengths), encoder(x, lengths))


def test_lengths_of_wrong_shape_raise() -> None:
    encoder = build_encoder("resnet_tiny", feat_dim=40)
    with pytest.raises(ValueError, match="lengths must have shape"):
        encoder(torch.randn(2, 50, 40), torch.tensor([50]))


def test_masked_mean_std_matches_slices() -> None:
    x = torch.randn(3, 5, 20)
    lengths = torch.tensor([20, 7, 1])
    mean, std = masked_mean_std(x, lengths, eps=0.0)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(mean[b], x[b, :, :n].mean(-1))
        torch.testing.assert_close(std[b], x[b, :, :n].std(-1, unbiased=False))


def test_traceable_masks_equal_speechbrains_and_are_restored() -> None:
    import speechbrain.lobes.models.ECAPA_TDNN as sb_ecapa
    from speechbrain.dataio.dataio import length_to_mask

    from dino_speech.models.ecapa import traceable_masks

    lengths = torch.tensor([3.0, 7.5, 0.4, 10.0])
    with traceable_masks():
        patched = sb_ecapa.length_to_mask
        assert patched is not length_to_mask
        for dtype in (None, torch.bool, torch.float32):
            torch.testing.assert_close(
                patched(lengths, max_len=10, dtype=dtype),
                length_to_mask(lengths, max_len=10, dtype=dtype),
            )
    assert sb_ecapa.length_to_mask is length_to_mask


def test_traced_ecapa_keeps_the_batch_size_dynamic() -> None:
    # a trace on a batch of two must still mask each item of a batch of three
    from dino_speech.models.ecapa import traceable_masks

    torch.manual_seed(0)
    encoder = build_encoder("ecapa_tiny", feat_dim=20).eval()
    example = (torch.randn(2, 30, 20), torch.tensor([30, 17]))
    with traceable_masks(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings
        traced = torch.jit.trace(encoder, example, check_trace=False)
    feats, lengths = torch.randn(3, 40, 20), torch.tensor([40, 12, 25])
    with torch.no_grad():
        got = traced(feats, lengths)
        alone = torch.cat([encoder(feats[i : i + 1, :n]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(got, alone, atol=1e-5, rtol=1e-4)
