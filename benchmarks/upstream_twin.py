"""A benchmark yardstick: upstream CorridorKey's network, written the way upstream writes it.

Upstream (nikopueringer/CorridorKey, ``CorridorKeyModule/core/model_transformer.py``)
runs its decoder heads and refiner with in-place ReLUs and an in-place residual
add, and its forward returns the final ``sigmoid`` alpha and fg. This module is
an independent eager twin of that network in that style, with the same
parameter names, so ``UpstreamTwin.load_state_dict(greenformer.state_dict())``
loads the very weights our :class:`~corridorkey_model.network.greenformer.GreenFormer`
runs. It is not product code: ``benchmarks/run.py`` times our traced network and
the exported ``.pt`` against it ("at least upstream's speed"), and checks that
the outputs agree.

Differences from upstream that do not change the arithmetic: the encoder is
built by timm with ``in_chans=4`` (upstream builds 3 channels and swaps in a
4-channel patch-embed conv of the same geometry); no refiner tiling or backbone
downscale options (both off by default upstream); no prints.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

ENCODER_NAME = "hiera_base_plus_224.mae_in1k_ft_in1k"


class MLP(nn.Module):
    def __init__(self, input_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class TwinDecoderHead(nn.Module):
    def __init__(self, output_dim: int, feature_channels: Sequence[int] = (112, 224, 448, 896),
                 embedding_dim: int = 256) -> None:
        super().__init__()
        self.linear_c4 = MLP(feature_channels[3], embedding_dim)
        self.linear_c3 = MLP(feature_channels[2], embedding_dim)
        self.linear_c2 = MLP(feature_channels[1], embedding_dim)
        self.linear_c1 = MLP(feature_channels[0], embedding_dim)
        self.linear_fuse = nn.Conv2d(embedding_dim * 4, embedding_dim, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(embedding_dim)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(embedding_dim, output_dim, kernel_size=1)

    def _level(self, mlp: MLP, c: Tensor) -> Tensor:
        n = c.shape[0]
        return mlp(c.flatten(2).transpose(1, 2)).transpose(1, 2).view(n, -1, c.shape[2], c.shape[3])

    def forward(self, features: List[Tensor]) -> Tensor:
        c1, c2, c3, c4 = features
        size = c1.shape[2:]
        p4 = F.interpolate(self._level(self.linear_c4, c4), size=size, mode="bilinear", align_corners=False)
        p3 = F.interpolate(self._level(self.linear_c3, c3), size=size, mode="bilinear", align_corners=False)
        p2 = F.interpolate(self._level(self.linear_c2, c2), size=size, mode="bilinear", align_corners=False)
        p1 = self._level(self.linear_c1, c1)
        x = self.linear_fuse(torch.cat([p4, p3, p2, p1], dim=1))
        x = self.bn(x)
        x = self.relu(x)
        return self.classifier(self.dropout(x))


class TwinRefinerBlock(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.gn1 = nn.GroupNorm(8, channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.gn2 = nn.GroupNorm(8, channels)

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        out = self.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        out += residual
        return self.relu(out)


class TwinRefiner(nn.Module):
    def __init__(self, in_channels: int = 7, hidden: int = 64, out_channels: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1), nn.GroupNorm(8, hidden),
                                  nn.ReLU(inplace=True))
        self.res1 = TwinRefinerBlock(hidden, 1)
        self.res2 = TwinRefinerBlock(hidden, 2)
        self.res3 = TwinRefinerBlock(hidden, 4)
        self.res4 = TwinRefinerBlock(hidden, 8)
        self.final = nn.Conv2d(hidden, out_channels, kernel_size=1)

    def forward(self, img: Tensor, coarse: Tensor) -> Tensor:
        x = self.stem(torch.cat([img, coarse], dim=1))
        x = self.res4(self.res3(self.res2(self.res1(x))))
        return self.final(x) * 10.0


class UpstreamTwin(nn.Module):
    """Upstream's GreenFormer at model resolution ``img_size``: ``x [N,4,S,S] -> {"alpha", "fg"}`` (refiner on)."""

    def __init__(self, img_size: int) -> None:
        super().__init__()
        import timm

        self.img_size = img_size
        self.encoder = timm.create_model(ENCODER_NAME, pretrained=False, features_only=True, in_chans=4,
                                         img_size=img_size)
        self.alpha_decoder = TwinDecoderHead(1)
        self.fg_decoder = TwinDecoderHead(3)
        self.refiner = TwinRefiner()

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        size = x.shape[2:]
        features = self.encoder(x)
        alpha_logits = F.interpolate(self.alpha_decoder(features), size=size, mode="bilinear", align_corners=False)
        fg_logits = F.interpolate(self.fg_decoder(features), size=size, mode="bilinear", align_corners=False)
        coarse = torch.cat([torch.sigmoid(alpha_logits), torch.sigmoid(fg_logits)], dim=1)
        delta = self.refiner(x[:, :3], coarse)
        return {"alpha": torch.sigmoid(alpha_logits + delta[:, 0:1]), "fg": torch.sigmoid(fg_logits + delta[:, 1:4])}


def twin_of(model: nn.Module) -> UpstreamTwin:
    """An :class:`UpstreamTwin` holding ``model``'s weights (strict load: the layouts must agree), eval mode."""
    twin = UpstreamTwin(int(model.img_size))
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin.eval()


__all__ = ["UpstreamTwin", "twin_of"]
