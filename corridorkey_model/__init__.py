"""CorridorKey's network, checkpoint loading, colour math and the reference pipeline.

Knows nothing about Nuke: the TorchScript export lives in ``corridorkey_export``
(folder ``export/``), the Nuke-side files in ``nuke/`` (the Cattery package in ``nuke/Cattery/CorridorKey/``).
"""

__version__ = "0.1.0"
