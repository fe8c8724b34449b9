"""Export of CorridorKey to TorchScript for Nuke's Inference node (Cattery).

Imported as ``corridorkey_export`` (the folder is ``export/``). Builds on
:mod:`corridorkey_model`; knows the Nuke contract (docs/DESIGN.md §4).
"""
