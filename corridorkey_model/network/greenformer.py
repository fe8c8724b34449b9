"""GreenFormer: CorridorKey's keying network.

A timm Hiera encoder (4 input channels: normalised RGB + alpha hint), two
SegFormer-style decoder heads (alpha, fg) and a dilated CNN refiner that
predicts delta logits. ``state_dict()`` matches the released
``CorridorKey_v1.0.pth`` key for key (see ``tests/data``).

``forward`` returns the parts the Nuke export needs, all at ``S x S``:
``(alpha_logits [N,1,S,S], fg_logits [N,3,S,S], delta_logits [N,4,S,S])``.
The final prediction is :func:`corridorkey_model.keying.frame.combine` of those
(``sigmoid(coarse + r * delta)``); :meth:`GreenFormer.predict` does it for you.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from corridorkey_model.keying.frame import combine

ENCODER_NAME = "hiera_base_plus_224.mae_in1k_ft_in1k"
FEATURE_CHANNELS = (112, 224, 448, 896)
EMBED_DIM = 256
IN_CHANNELS = 4

#: Hiera's geometry: a 4 px patch stride times an 8 x 8-token mask unit. The
#: token grid (S / 4) must be a whole number of mask units, so S must be a
#: multiple of 32. 2048 is the released model's training resolution.
SIZE_MULTIPLE = 32
MIN_IMG_SIZE = 64
DEFAULT_IMG_SIZE = 2048


def check_img_size(img_size: int) -> int:
    """Return ``img_size`` if Hiera can run at it, else raise ``ValueError`` saying which sizes work."""
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < MIN_IMG_SIZE \
            or img_size % SIZE_MULTIPLE:
        lower = max(MIN_IMG_SIZE, (int(img_size) // SIZE_MULTIPLE) * SIZE_MULTIPLE) if isinstance(img_size, int) else 512
        raise ValueError(
            f"model resolution {img_size!r} is not supported: it must be a multiple of {SIZE_MULTIPLE} "
            f"and at least {MIN_IMG_SIZE} (Hiera's 4 px patches form 8 x 8 mask units): the nearest are "
            f"{lower} and {lower + SIZE_MULTIPLE}; common choices 512, 1024, 1536 and {DEFAULT_IMG_SIZE} "
            f"(the released model's)."
        )
    return img_size


class TokenProjection(nn.Module):
    """Linear map of a feature map's channels, applied per token: ``[N, C, h, w] -> [N, D, h, w]``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        tokens = self.proj(x.flatten(2).transpose(1, 2))  # [N, h*w, D]
        return tokens.transpose(1, 2).reshape(n, -1, h, w)


class DecoderHead(nn.Module):
    """Fuses the four encoder levels at stride 4 and predicts ``out_channels`` logits.

    The released head computes ``fuse(cat([up(P4 c4), up(P3 c3), up(P2 c2), P1 c1]))``:
    per-level token projections to 256 channels, bilinear upsampling to stride 4,
    a 1024-channel concat and a 1x1 ``linear_fuse`` conv. A 1x1 conv and a
    bilinear resize commute (the resize's weights sum to 1), so ``forward``
    computes the same sum as ``sum_i up((F_i P_i) c_i)``: each level's projection
    and its 256-column block ``F_i`` of ``linear_fuse`` are merged into one
    ``[256, C_i]`` 1x1 conv applied at the level's own resolution. Same
    parameters (state dict unchanged), same result up to float rounding (~1e-7),
    no 1024-channel tensor at stride 4: about 4x faster than the literal form.
    """

    def __init__(self, out_channels: int, feature_channels: Sequence[int] = FEATURE_CHANNELS,
                 embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        c1, c2, c3, c4 = feature_channels
        self.linear_c4 = TokenProjection(c4, embed_dim)
        self.linear_c3 = TokenProjection(c3, embed_dim)
        self.linear_c2 = TokenProjection(c2, embed_dim)
        self.linear_c1 = TokenProjection(c1, embed_dim)
        self.linear_fuse = nn.Conv2d(4 * embed_dim, embed_dim, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(embed_dim)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(embed_dim, out_channels, kernel_size=1)

    def _fused_level(self, level: int, projection: TokenProjection, c: Tensor) -> Tensor:
        """``F_level (P c)`` as one 1x1 conv: ``c [N, C_i, h, w] -> [N, D, h, w]``."""
        embed = projection.proj.out_features
        block = self.linear_fuse.weight[:, level * embed:(level + 1) * embed, 0, 0]  # [D, D]
        weight = torch.matmul(block, projection.proj.weight)  # [D, C_i]
        bias = torch.matmul(block, projection.proj.bias)  # [D]
        return F.conv2d(c, weight.unsqueeze(-1).unsqueeze(-1), bias)

    def forward(self, features: List[Tensor]) -> Tensor:
        c1, c2, c3, c4 = features  # strides 4, 8, 16, 32
        size = c1.shape[2:]
        x = self._fused_level(3, self.linear_c1, c1)  # concat order: c4, c3, c2, c1
        for level, projection, c in ((0, self.linear_c4, c4), (1, self.linear_c3, c3), (2, self.linear_c2, c2)):
            x += F.interpolate(self._fused_level(level, projection, c), size=size, mode="bilinear",
                               align_corners=False)
        x = self.relu(self.bn(x))
        # 1-3 channels: cheap to make NCHW, so everything downstream (the refiner) runs NCHW as before
        return self.classifier(self.dropout(x)).contiguous()  # [N, out, S/4, S/4]


def group_norm_(x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float, relu: bool = False) -> Tensor:
    """GroupNorm of ``x`` (then ReLU if ``relu``), written into ``x``: the refiner's norm for channels-last input.

    The same formula as ATen's GroupNorm (population variance per ``(n, group)``, ``rstd =
    1 / sqrt(var + eps)``, ``y = x * rstd * gamma + (beta - mean * rstd * gamma)``) and the same
    parameters, from per-channel statistics exact to a few ulp: ``sum(x)`` by ATen's cascade
    summation in fp32, ``mean(x^2)`` as the diagonal of the ``[C, C]`` Gram matrix of the
    ``[H*W, C]`` view scaled by ``1 / (H*W)`` inside the GEMM (one GEMM that reads ``x`` once;
    the scaling keeps a half-precision run of the fp32 trace, Nuke's GPU option, from
    overflowing). In place: no new activation is allocated. ATen's own channels-last GroupNorm
    sums in a single fp32 accumulator per channel and is off by ~1e-3 at S = 1024 (DESIGN 4.5);
    its NCHW kernel is exact but makes the convolutions around it reorder their 1 GiB (at S =
    2048) activations to and from oneDNN's layout.

    bfloat16 input (the CPU bfloat16 copy, traced under autocast) takes ATen's kernel, which
    accumulates in fp32, far finer than bfloat16's own rounding.
    """
    if x.dtype == torch.bfloat16:
        y = F.group_norm(x, groups, weight, bias, eps)
        return y.relu_() if relu else y
    n, c, h, w = x.shape
    per_group = c // groups
    channel_mean = x.sum((2, 3), dtype=torch.float32) / (h * w)  # [N, C]
    pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # [N, HW, C]: a view when x is channels-last
    channel_sq = torch.baddbmm(x.new_zeros(()), pixels.transpose(1, 2), pixels, beta=0.0,
                               alpha=1.0 / (h * w)).diagonal(dim1=1, dim2=2).float()  # [N, C]: mean of x^2
    mean = channel_mean.view(n, groups, per_group).mean(2)  # [N, G]
    var = (channel_sq.view(n, groups, per_group).mean(2) - mean * mean).clamp_min(0.0)
    rstd = torch.rsqrt(var + eps)
    scale = rstd.repeat_interleave(per_group, dim=1) * weight  # [N, C]
    shift = bias - mean.repeat_interleave(per_group, dim=1) * scale
    x = x.mul_(scale.view(n, c, 1, 1)).add_(shift.view(n, c, 1, 1))
    return x.relu_() if relu else x


def _norm(x: Tensor, norm: nn.GroupNorm, relu: bool = False) -> Tensor:
    """:func:`group_norm_` with an ``nn.GroupNorm``'s parameters (the released model's modules)."""
    return group_norm_(x, norm.weight, norm.bias, norm.num_groups, norm.eps, relu)


class RefinerBlock(nn.Module):
    """Residual block: dilated conv, GroupNorm, ReLU, dilated conv, GroupNorm, + input, ReLU."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.gn1 = nn.GroupNorm(8, channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.gn2 = nn.GroupNorm(8, channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        # In place where the value is not needed again (as upstream does): at S = 2048 each
        # 64-channel activation is 1 GiB, so every avoided copy saves time and peak memory.
        y = _norm(self.conv1(x), self.gn1, relu=True)
        y = _norm(self.conv2(y), self.gn2)
        y += x
        return self.relu(y)


class Refiner(nn.Module):
    """Dilated CNN (receptive field ~65 px) predicting delta logits ``[N, 4, S, S]`` (alpha, fg RGB).

    Its activations are channels-last (``[N, S, S, 64]`` in memory): oneDNN convolves that
    layout directly, where NCHW costs a reorder to its blocked layout and back around every
    convolution (issue #29: ~1.5x faster convolutions, two fewer 1 GiB buffers at S = 2048).
    The GroupNorms are :func:`group_norm_`, exact for that layout. Input and output are NCHW.
    """

    DELTA_LOGIT_SCALE = 10.0

    def __init__(self, in_channels: int = 7, hidden: int = 64, out_channels: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(  # conv, GroupNorm, ReLU: keys stem.0 / stem.1 as released
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1),
            nn.GroupNorm(8, hidden),
            nn.ReLU(inplace=True),
        )
        self.res1 = RefinerBlock(hidden, dilation=1)
        self.res2 = RefinerBlock(hidden, dilation=2)
        self.res3 = RefinerBlock(hidden, dilation=4)
        self.res4 = RefinerBlock(hidden, dilation=8)
        self.final = nn.Conv2d(hidden, out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # [N, 7, S, S], 7 channels: cheap
        x = _norm(self.stem[0](x), self.stem[1], relu=True)
        x = self.res4(self.res3(self.res2(self.res1(x))))
        return self.final(x).mul_(self.DELTA_LOGIT_SCALE).contiguous()  # [N, 4, S, S] NCHW


def build_encoder(img_size: int) -> nn.Module:
    """timm Hiera (base plus) as a feature extractor with 4 input channels, random weights."""
    import timm  # imported here: timm pulls in torchvision, slow to import

    return timm.create_model(ENCODER_NAME, pretrained=False, features_only=True,
                             in_chans=IN_CHANNELS, img_size=img_size)


class GreenFormer(nn.Module):
    """CorridorKey's network at model resolution ``img_size`` (S)."""

    def __init__(self, img_size: int = DEFAULT_IMG_SIZE) -> None:
        super().__init__()
        self.img_size = check_img_size(img_size)
        self.encoder = build_encoder(img_size)
        self.alpha_decoder = DecoderHead(out_channels=1)
        self.fg_decoder = DecoderHead(out_channels=3)
        self.refiner = Refiner()

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``x [N, 4, S, S]`` (normalised RGB + hint) -> coarse alpha/fg logits and delta logits at S."""
        size = x.shape[2:]
        features = self.encoder(x)  # 4 levels, strides 4, 8, 16, 32
        alpha_logits = F.interpolate(self.alpha_decoder(features), size=size, mode="bilinear", align_corners=False)
        fg_logits = F.interpolate(self.fg_decoder(features), size=size, mode="bilinear", align_corners=False)
        refiner_in = torch.cat([x[:, 0:3], torch.sigmoid(alpha_logits), torch.sigmoid(fg_logits)], dim=1)
        delta_logits = self.refiner(refiner_in)
        return alpha_logits, fg_logits, delta_logits

    def predict(self, x: Tensor, refiner_strength: float = 1.0) -> Dict[str, Tensor]:
        """Final ``alpha [N,1,S,S]`` and sRGB ``fg [N,3,S,S]`` for refiner strength ``r`` (1 = full model)."""
        alpha_logits, fg_logits, delta_logits = self(x)
        alpha, fg = combine(alpha_logits, fg_logits, delta_logits, refiner_strength)
        return {"alpha": alpha, "fg": fg, "alpha_logits": alpha_logits, "fg_logits": fg_logits,
                "delta_logits": delta_logits}
