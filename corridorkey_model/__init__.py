"""CorridorKey's network, its keying math and the reference pipeline. Knows nothing about Nuke.

Subpackages, one concern each; imports point down this list only:

* :mod:`corridorkey_model.keying`: the math the ``.pt`` and the pipeline share: the knob
  spec, colour formulas, pre/post-processing, despeckle (TorchScript-compatible torch).
* :mod:`corridorkey_model.network`: the GreenFormer network and its checkpoints.
* :mod:`corridorkey_model.pipeline`: the batch pipeline (``corridorkey`` CLI): stages,
  threaded runner, frame and video I/O, render-farm jobs.

Shared helpers: :mod:`~corridorkey_model.atomic` (atomic file writes) and
:mod:`~corridorkey_model.devices` (torch devices named on a command line).
:mod:`~corridorkey_model.testing` is test support: random-weight models, checkpoints in
the released layout and synthetic plates (also behind ``--random-init`` and the
validation's plates). The TorchScript export and the Nuke contract live in
``corridorkey_export`` (folder ``export/``).
"""

__version__ = "0.1.0"
