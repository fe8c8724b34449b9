"""benchmarks/bench_attention.py: its shapes are the encoder's, its variants compute attention, its split solves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_attention  # noqa: E402


def test_shapes_are_the_encoders_global_attention():
    """Counted on the built Hiera: its global, unpooled attention calls and their q shape at S = 256."""
    from timm.models.hiera import MaskUnitAttention

    from corridorkey_model.network.greenformer import build_encoder

    size = 256
    encoder = build_encoder(size).eval()
    seen = []

    def record(module, args, kwargs):
        seen.append((module.heads, module.head_dim, args[0].shape[1]))

    hooks = [m.register_forward_pre_hook(record, with_kwargs=True) for m in encoder.modules()
             if isinstance(m, MaskUnitAttention) and not m.use_mask_unit_attn and m.q_stride == 1]
    with torch.no_grad():
        encoder(torch.zeros(1, 4, size, size))
    for h in hooks:
        h.remove()
    stage3 = [s for s in seen if s[2] == bench_attention.stage3_tokens(size)]
    assert stage3 and set(stage3) == {(bench_attention.HEADS, bench_attention.HEAD_DIM, (size // 16) ** 2)}
    assert len(stage3) == bench_attention.GLOBAL_BLOCKS


def test_unfused_variant_is_attention():
    q, k, v = bench_attention.qkv(2, 8, 40, torch.float64, seed=3)
    expect = F.scaled_dot_product_attention(q, k, v)
    for block in (1, 7, 40, 64):
        assert (bench_attention.unfused(q, k, v, block) - expect).abs().max() <= 1e-12


def test_split_recovers_a_known_cost_model():
    a, b = 0.13, 0.0009  # seconds per head (softmax) and per head channel (products)
    h, d = bench_attention.HEADS, bench_attention.HEAD_DIM
    cost = {"fused bf16": a * h + b * h * d,
            "fused bf16, half the softmax": a * (h // 2) + b * h * d,
            "fused bf16, half the products": a * h + b * h * (d // 2)}
    parts = bench_attention.split(cost)
    assert parts["softmax"] == pytest.approx(a * h, rel=1e-9)
    assert parts["products"] == pytest.approx(b * h * d, rel=1e-9)


def test_sizes_not_multiple_of_16_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        bench_attention.main(["--img-size", "1000"])
    assert e.value.code == 2
    assert "1000" in capsys.readouterr().err
