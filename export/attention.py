"""Choosing timm's attention kernel for tracing and for the eager reference.

timm modules read ``use_fused_attn()`` when they are built and keep it in a
``fused_attn`` attribute. :func:`fused_attention` switches an already built
model (and timm's global default) for the duration of a ``with`` block, so the
traced graph and the eager reference use the same kernel (fused:
``F.scaled_dot_product_attention``; unfused: matmul + softmax, which older
libtorch runtimes know).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from torch import nn


@contextlib.contextmanager
def fused_attention(model: nn.Module, enabled: Optional[bool]) -> Iterator[nn.Module]:
    """Within the block, every timm attention module of ``model`` uses fused attention iff ``enabled``.

    ``enabled=None`` leaves the model as it is. The previous settings are restored on exit.
    """
    if enabled is None:
        yield model
        return
    from timm.layers import set_fused_attn, use_fused_attn

    previous_global = use_fused_attn()
    saved = [(m, m.fused_attn) for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    try:
        set_fused_attn(bool(enabled))
        for m, _ in saved:
            m.fused_attn = bool(enabled)
        yield model
    finally:
        for m, value in saved:
            m.fused_attn = value
        set_fused_attn(previous_global)


def uses_fused_attention(model: nn.Module) -> Optional[bool]:
    """Whether ``model``'s timm attention modules use fused attention (``None`` if it has none or they differ)."""
    values = {m.fused_attn for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)}
    return values.pop() if len(values) == 1 else None
