"""The keying math the exported ``.pt`` and the pipeline share (docs/DESIGN.md §3).

* :mod:`.knobs`: the one spec of the live knobs and of the screens.
* :mod:`.colour`: sRGB curves, despill, antialiased resize, ImageNet normalisation, preview comp.
* :mod:`.frame`: ``preprocess``, ``combine``, ``postprocess`` and ``key_frame``, the reference.
* :mod:`.despeckle`: the despeckle knob's island removal.

Everything on the ``.pt``'s path is TorchScript-compatible torch code, compiled by the
export and called eagerly by the pipeline: one implementation of every formula.
"""
