"""The network and its weights: :mod:`.greenformer` (the GreenFormer model) and
:mod:`.checkpoint` (finding, hashing, checking and loading released checkpoints)."""
