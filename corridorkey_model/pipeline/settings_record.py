"""The settings a clip's output was keyed with: ``OUTPUT/corridorkey_settings.json``.

A resumed run (``corridorkey run`` without ``--overwrite``) skips the frames already
written, so it must key the rest with the same settings, or ``Output/`` would mix two
keys. The first run writes the record (atomically); every later run compares its own
settings with it and refuses, naming each difference, unless ``--overwrite`` re-keys the
frames (the record is then replaced). Only what changes the pixels is recorded: the knob
values, the screen, the model resolution, the weights (SHA-256, or ``random-init``), the OCIO
config and spaces, the EXR layer keyed (``--layer``), the garbage matte (``--garbage-matte``, its
absolute path), the file formats and ``--temporal`` (only when on: a record written before the option
existed still matches a run without it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from corridorkey_model import atomic

FILENAME = "corridorkey_settings.json"
FORMAT = 1


class SettingsMismatch(Exception):
    """The output was keyed with other settings; the message lists them and what to do."""


def record_path(output_dir: Path) -> Path:
    return Path(output_dir) / FILENAME


def read(output_dir: Path) -> Optional[Dict[str, Any]]:
    """The recorded settings, or None when there is no (readable) record."""
    path = record_path(output_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return data.get("settings") if isinstance(data, dict) else None


def differences(recorded: Dict[str, Any], settings: Dict[str, Any]) -> List[str]:
    """``"name: recorded -> now"`` for each setting that differs (JSON round trip: values compare as written)."""
    now = json.loads(json.dumps(settings))
    return [f"{k}: {recorded.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(recorded) | set(now))
            if recorded.get(k) != now.get(k)]


def check(output_dir: Path, settings: Dict[str, Any], overwrite: bool, clip: str) -> bool:
    """Raise :class:`SettingsMismatch` if ``output_dir`` was keyed with other settings (unless ``overwrite``).

    Returns whether the record must be (re)written.
    """
    recorded = read(output_dir)
    if recorded is None:
        return True
    diff = differences(recorded, settings)
    if not diff:
        return False
    if overwrite:
        return True
    raise SettingsMismatch(
        f"clip {clip}: {output_dir} was keyed with other settings ({'; '.join(diff)}; recorded in "
        f"{record_path(output_dir)}). Resuming would mix two keys: run again with --overwrite to re-key the "
        f"frames with the new settings, use the recorded ones, or choose another --output."
    )


def garbage_matte_entry(path: Optional[Path]) -> Dict[str, Any]:
    """The record's ``garbage_matte``: the absolute path of ``--garbage-matte``, or None (a record written
    before the option existed reads as None, so it still matches a run without one)."""
    return {"garbage_matte": None if path is None else str(Path(path).absolute())}


def write(output_dir: Path, settings: Dict[str, Any]) -> None:
    data = {"format": FORMAT, "settings": settings}
    atomic.write_bytes(record_path(output_dir), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
