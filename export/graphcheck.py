"""Finding constant devices in a TorchScript module's graph.

Nuke moves the module and the input to the GPU ("Use GPU if available") and
expects the graph to follow. A device baked into the graph (a ``Device``
constant such as ``torch.device("cpu")`` from tracing ``torch.zeros(...,
device=x.device)``, a device string, or a non-scalar tensor constant, which
lives on the device it was traced on) breaks that. 0-dim tensor constants are
allowed: the tracer records Python numbers that way and PyTorch promotes a
0-dim CPU tensor to any device.
"""

from __future__ import annotations

import re
from typing import List

import torch

_DEVICE_STRING = re.compile(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?|meta)$")


def _graphs(module: torch.nn.Module):
    """The inlined graph of every method of ``module`` (submodule calls are inlined into ``forward``)."""
    inlined = getattr(module, "inlined_graph", None)
    if inlined is not None:
        yield "forward", inlined
    for name, sub in module.named_modules():
        if not name:
            continue
        try:
            graph = getattr(sub, "graph", None)
        except RuntimeError:  # a container without forward (ModuleList...)
            continue
        if graph is not None:
            yield name, graph


def find_constant_devices(module: torch.nn.Module) -> List[str]:
    """Descriptions of every constant device in ``module``'s graphs (empty: none)."""
    found: List[str] = []
    seen = set()
    for where, graph in _graphs(module):
        for node in graph.findAllNodes("prim::Constant"):
            out = node.output()
            kind = out.type().kind()
            problem = None
            if kind == "DeviceObjType":
                problem = f"Device constant {node.s('value') if node.hasAttribute('value') else ''}".strip()
            elif kind == "StringType" and node.hasAttribute("value") and _DEVICE_STRING.match(node.s("value")):
                problem = f"device string {node.s('value')!r}"
            elif kind == "TensorType" and node.hasAttribute("value"):
                value = node.t("value")
                if value.dim() > 0:
                    problem = f"tensor constant of shape {list(value.shape)} on {value.device}"
            if problem:
                source = str(node).split("#", 1)[-1].strip() if "#" in str(node) else ""
                text = f"{where}: {problem}" + (f" (from {source})" if source else "")
                if text not in seen:
                    seen.add(text)
                    found.append(text)
    return found


__all__ = ["find_constant_devices"]
