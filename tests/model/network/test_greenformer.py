"""GreenFormer against the released checkpoint's key list, and its forward contract."""

import json

import pytest
import torch
import torch.nn.functional as F
from repo_paths import DATA, REPO, SYNTH_SIZE

from corridorkey_model.keying.frame import combine, preprocess
from corridorkey_model.network import greenformer
from corridorkey_model.network.greenformer import GreenFormer, check_img_size
from corridorkey_model.testing import green_screen_plate, plate_tensor


@pytest.fixture(scope="module")
def manifest():
    return json.loads((DATA / "greenformer_state_dict_2048.json").read_text())


def test_state_dict_matches_released_keys_and_shapes_at_2048(manifest):
    # Built on the meta device: real module construction, no 400 MB of memory.
    with torch.device("meta"):
        model = GreenFormer(2048)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == manifest["num_tensors"] == 367
    assert sorted(set(manifest["tensors"]) - set(shapes)) == []  # missing
    assert sorted(set(shapes) - set(manifest["tensors"])) == []  # unexpected
    assert shapes == manifest["tensors"]
    n_values = sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())
    assert n_values == manifest["num_params"]


def test_state_dict_at_other_sizes_differs_only_in_pos_embed(manifest, synthetic_model):
    shapes = {k: list(v.shape) for k, v in synthetic_model.state_dict().items()}
    differ = {k for k in shapes if shapes[k] != manifest["tensors"][k]}
    assert differ == {"encoder.model.pos_embed"}
    assert shapes["encoder.model.pos_embed"] == [1, (SYNTH_SIZE // 4) ** 2, 112]


@pytest.mark.parametrize("size", [512, 1024, 1536, 2048, 64, 96, 224])
def test_supported_sizes(size):
    assert check_img_size(size) == size


@pytest.mark.parametrize("size", [200, 500, 1000, 2000, 32, 0, -64, 512.0])
def test_unsupported_sizes_are_refused_with_the_rule(size):
    with pytest.raises(ValueError, match="multiple of 32"):
        check_img_size(size)


def test_hiera_runs_at_the_smallest_odd_multiple():
    """Multiples of 32 that are not powers of two (here 96) run through Hiera's unroll/reroll."""
    torch.manual_seed(0)
    model = GreenFormer(96).eval()
    a, f, d = model(torch.randn(1, 4, 96, 96))
    assert a.shape == (1, 1, 96, 96) and f.shape == (1, 3, 96, 96) and d.shape == (1, 4, 96, 96)


@pytest.fixture(scope="module")
def outputs(synthetic_model):
    plate = plate_tensor(green_screen_plate(SYNTH_SIZE, SYNTH_SIZE, seed=3))
    x = preprocess(plate, SYNTH_SIZE, 0)
    return x, synthetic_model.predict(x, refiner_strength=1.0), synthetic_model.predict(x, refiner_strength=0.0)


def test_forward_shapes_and_ranges(outputs):
    _, full, coarse = outputs
    assert full["alpha"].shape == (1, 1, SYNTH_SIZE, SYNTH_SIZE)
    assert full["fg"].shape == (1, 3, SYNTH_SIZE, SYNTH_SIZE)
    for out in (full, coarse):
        for key in ("alpha", "fg"):
            assert torch.isfinite(out[key]).all()
            assert out[key].min() >= 0 and out[key].max() <= 1


def test_refiner_strength_changes_output_and_zero_is_coarse(outputs):
    _, full, coarse = outputs
    assert (full["alpha"] - coarse["alpha"]).abs().max() > 1e-2
    assert (full["fg"] - coarse["fg"]).abs().max() > 1e-2
    torch.testing.assert_close(coarse["alpha"], torch.sigmoid(full["alpha_logits"]), rtol=0, atol=0)
    torch.testing.assert_close(coarse["fg"], torch.sigmoid(full["fg_logits"]), rtol=0, atol=0)


def test_final_is_sigmoid_of_coarse_plus_scaled_delta(outputs):
    _, full, _ = outputs
    r = 0.5
    alpha, fg = combine(full["alpha_logits"], full["fg_logits"], full["delta_logits"], r)
    torch.testing.assert_close(alpha, torch.sigmoid(full["alpha_logits"] + r * full["delta_logits"][:, :1]))
    torch.testing.assert_close(fg, torch.sigmoid(full["fg_logits"] + r * full["delta_logits"][:, 1:]))


def test_refiner_sees_normalised_rgb_and_coarse_probabilities(synthetic_model, outputs):
    x, full, _ = outputs
    refiner_in = torch.cat([x[:, :3], torch.sigmoid(full["alpha_logits"]), torch.sigmoid(full["fg_logits"])], 1)
    expect = synthetic_model.refiner(refiner_in)
    torch.testing.assert_close(full["delta_logits"], expect, rtol=0, atol=0)
    # the x10 output scale of the released refiner
    final_in = synthetic_model.refiner.res4(synthetic_model.refiner.res3(synthetic_model.refiner.res2(
        synthetic_model.refiner.res1(synthetic_model.refiner.stem(refiner_in)))))
    # the literal stem (ATen's NCHW GroupNorm) and the refiner's group_norm_ sum in other orders: ~1e-6 before x10
    torch.testing.assert_close(expect, synthetic_model.refiner.final(final_in) * 10.0, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- the fast forms compute the literal ones


def test_decoder_head_equals_the_literal_concat_form(synthetic_model):
    """The head merges each projection into its block of linear_fuse; the released form concatenates."""
    head = synthetic_model.alpha_decoder
    g = torch.Generator().manual_seed(4)
    n = SYNTH_SIZE // 4
    # Hiera hands over channels-last views; check both layouts
    for channels_last in (False, True):
        feats = []
        for i, c in enumerate((112, 224, 448, 896)):
            f = torch.randn(1, c, n >> i, n >> i, generator=g)
            feats.append(f.contiguous(memory_format=torch.channels_last) if channels_last else f)

        def level(proj, f, size):
            t = proj.proj(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(1, -1, f.shape[2], f.shape[3])
            return t if t.shape[2:] == size else F.interpolate(t, size=size, mode="bilinear", align_corners=False)

        size = feats[0].shape[2:]
        cat = torch.cat([level(head.linear_c4, feats[3], size), level(head.linear_c3, feats[2], size),
                         level(head.linear_c2, feats[1], size), level(head.linear_c1, feats[0], size)], dim=1)
        literal = head.classifier(torch.relu(head.bn(head.linear_fuse(cat))))
        fast = head(feats)
        assert fast.is_contiguous()
        torch.testing.assert_close(fast, literal, rtol=1e-5, atol=1e-5)


def test_refiner_blocks_work_in_place_without_touching_their_input(synthetic_model):
    block = synthetic_model.refiner.res2
    x = torch.randn(1, 64, 48, 40, generator=torch.Generator().manual_seed(5))
    before = x.clone()
    literal = torch.relu(block.gn2(block.conv2(torch.relu(block.gn1(block.conv1(x))))) + x)
    # channels-last activations and group_norm_ (issue #29): the same formula, summed in another order
    torch.testing.assert_close(block(x), literal, rtol=1e-5, atol=1e-5)
    assert torch.equal(x, before)


def test_channels_last_group_norm_matches_the_formula_in_float64():
    """group_norm_ on a channels-last activation against GroupNorm's formula in float64, at a size
    where ATen's own channels-last kernel (one fp32 accumulator per channel) is off by 5.7e-5."""
    from corridorkey_model.network.greenformer import group_norm_

    g = torch.Generator().manual_seed(6)
    weight, bias = torch.rand(64, generator=g) + 0.5, torch.randn(64, generator=g)
    x = (torch.randn(1, 64, 384, 384, generator=g) * 3 + 2).contiguous(memory_format=torch.channels_last)
    groups = x.double().contiguous().view(1, 8, -1)
    mean, var = groups.mean(2, keepdim=True), groups.var(2, unbiased=False, keepdim=True)
    expect = ((groups - mean) / torch.sqrt(var + 1e-5)).view(x.shape) * weight.double().view(1, -1, 1, 1) \
        + bias.double().view(1, -1, 1, 1)
    with torch.no_grad():
        got = group_norm_(x.clone(memory_format=torch.channels_last), weight, bias, 8, 1e-5)
        relu = group_norm_(x.clone(memory_format=torch.channels_last), weight, bias, 8, 1e-5, True)
    assert (got.double() - expect).abs().max() <= 2e-6
    assert torch.equal(relu, got.clamp_min(0))
    assert got.is_contiguous(memory_format=torch.channels_last)  # written in place, layout kept
    # bfloat16 (the CPU bfloat16 copy) takes ATen's kernel and stays bfloat16
    with torch.no_grad():
        half = group_norm_(x.bfloat16(), weight, bias, 8, 1e-5)
    assert half.dtype == torch.bfloat16 and (half.double() - expect).abs().max() <= 0.1


def test_a_trace_keeps_the_half_precision_route_of_the_group_norm(synthetic_model):
    """The .pt is traced in fp32; Nuke may run it in half precision on a GPU. There the Gram matrix's sums
    of squares would overflow a half result (inf: NaN out), so the dtype test must survive the trace."""
    block = synthetic_model.refiner.res1

    class Norm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gn = block.gn1

        def forward(self, x):
            return greenformer._norm(x, self.gn, relu=True)

    example = torch.randn(1, 64, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        traced = torch.jit.trace(Norm(), example, check_trace=False)
        big = (torch.randn(1, 64, 64, 64, generator=torch.Generator().manual_seed(8)) * 50 + 100).contiguous(
            memory_format=torch.channels_last)  # sum of x^2 per channel ~ 4e7 > 65504, half's largest
        got = traced(big.half())
        expect = torch.relu(block.gn1(big))
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    assert (got.float() - expect).abs().max() <= 0.02


def test_network_matches_upstreams_eager_form(synthetic_model, outputs):
    """The benchmark's yardstick (upstream's code style, in place) loads our state dict and agrees."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from upstream_twin import twin_of

    x, full, _ = outputs
    twin = twin_of(synthetic_model)
    out = twin(x)
    assert (out["alpha"] - full["alpha"]).abs().max() <= 1e-5
    assert (out["fg"] - full["fg"]).abs().max() <= 1e-5
