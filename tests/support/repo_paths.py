"""Paths and sizes the tests share (imported by name: pyproject.toml puts tests/support on sys.path)."""

from pathlib import Path

#: The repository root.
REPO = Path(__file__).resolve().parents[2]
#: Committed test data (the released checkpoint's key names and shapes).
DATA = REPO / "tests" / "data"
#: Model resolution of the session's synthetic checkpoint (tests/conftest.py).
SYNTH_SIZE = 256
