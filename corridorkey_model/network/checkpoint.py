"""Finding, checking and loading CorridorKey checkpoints.

:func:`load_model` is what users and the exporter call::

    model, info = load_model("CorridorKey_v1.0.pth", img_size=1024)

It accepts a bare state dict or one wrapped under ``state_dict`` /
``model_state_dict`` / ``model``, strips the ``_orig_mod.`` prefix of a
``torch.compile``d model (and ``module.`` of DataParallel), reads ``.pth`` /
``.pt`` with ``torch.load(weights_only=True)`` and ``.safetensors`` with
safetensors, builds :class:`GreenFormer` at any supported model resolution and
resizes ``pos_embed`` bicubically when the checkpoint was trained at another.
Loading is strict: a missing or unexpected key, or a shape mismatch other
than ``pos_embed``, is an error that names the keys.

With no path, the released ``CorridorKey_v1.0.pth`` is looked up in the
Hugging Face cache (works offline) and fetched from the Hub if absent; such a
file must match the published SHA-256. A file the user names is hashed and
logged as released or not, never refused for its hash.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from corridorkey_model.network.greenformer import DEFAULT_IMG_SIZE, GreenFormer, check_img_size

log = logging.getLogger(__name__)

RELEASED_FILENAME = "CorridorKey_v1.0.pth"
HF_REPO_ID = "nikopueringer/CorridorKey_v1.0"
HF_URL = f"https://huggingface.co/{HF_REPO_ID}"
#: Published SHA-256 of ``CorridorKey_v1.0.pth`` (docs/DESIGN.md §3.3; not verified here: no internet).
RELEASED_SHA256 = "a03827f58e8c79b2ca26031bf67c77db5390dc1718c1ffc5b7aed8b57315788f"



@dataclass(frozen=True)
class ReleasedWeights:
    """Where one released model lives on the Hugging Face Hub.

    ``filenames`` are looked up in the local cache in this order; the first is the one
    fetched when none is cached. Only ``CorridorKey_v1.0.pth`` has a published SHA-256
    (:data:`RELEASED_SHA256`); for the other files the hash is recorded, not checked.
    """

    screen: str
    repo_id: str
    filenames: Tuple[str, ...]

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"


#: The released models by screen (corridorkey_model.keying.knobs.SCREENS). Same architecture, other weights.
RELEASED: Dict[str, ReleasedWeights] = {
    "green": ReleasedWeights("green", HF_REPO_ID, (RELEASED_FILENAME, "CorridorKey_v1.0.safetensors")),
    "blue": ReleasedWeights("blue", "nikopueringer/CorridorKeyBlue_1.0", ("CorridorKeyBlue_1.0.safetensors",)),
}


def published_sha256(filename: str) -> Optional[str]:
    """The published SHA-256 of a released file, or None where none is published."""
    return RELEASED_SHA256 if filename == RELEASED_FILENAME else None


def released_weights(screen: str) -> ReleasedWeights:
    try:
        return RELEASED[screen]
    except KeyError:
        raise CheckpointError(f"unknown screen {screen!r}; released models: {', '.join(RELEASED)}") from None


#: Any GreenFormer checkpoint holds ~70-100 M values (>= 140 MB even in fp16);
#: anything under this is certainly not one (an LFS pointer, an HTML error page...).
MIN_CHECKPOINT_BYTES = 1 << 20

POS_EMBED_KEY = "encoder.model.pos_embed"
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
STRIPPED_PREFIXES = ("_orig_mod.", "module.")
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec"

PathLike = Union[str, os.PathLike]


class CheckpointError(Exception):
    """A checkpoint could not be found, read or matched to GreenFormer. The message says what to do."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Where the weights came from; recorded in the export manifest."""

    path: str  # absolute: the manifest records it, and `validate` finds the file from any folder
    sha256: str
    is_released_file: bool
    source: str  # "user path", "huggingface cache" or "downloaded"
    screen: str  # the screen the weights are used for ("green" / "blue"): the weights cannot tell
    img_size: int  # model resolution the model was built at
    checkpoint_img_size: int  # resolution implied by the checkpoint's pos_embed grid
    pos_embed_resized: bool


# --------------------------------------------------------------------------- finding the file


def _where_to_get_it(screen: str = "green") -> str:
    weights = released_weights(screen)
    option = ("--checkpoint PATH" if screen == "green"
              else "--checkpoint PATH with --screen blue (corridorkey run with --screen auto: --blue-checkpoint PATH)")
    return (
        f"The released {screen}-screen weights ({' or '.join(weights.filenames)}, ~400 MB) are published at "
        f"{weights.url} . Download one there and pass its path with {option}, or let the loader fetch it "
        f"into the Hugging Face cache (needs network access; set HF_HOME to choose where the cache lives)."
    )


def find_released_checkpoint(screen: str = "green") -> Tuple[Path, str]:
    """Path of a released checkpoint in the Hugging Face cache, fetching it if absent.

    Returns ``(path, source)``. Every file name of the screen's model is tried in the
    cache first (the green model is published as ``.pth`` and ``.safetensors``). Works
    offline when a file is cached; otherwise fails fast with instructions.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    weights = released_weights(screen)
    for filename in weights.filenames:
        try:
            path = hf_hub_download(weights.repo_id, filename, local_files_only=True)
        except LocalEntryNotFoundError:
            continue
        log.info("found %s in the Hugging Face cache: %s", filename, path)
        return Path(path), "huggingface cache"
    wanted = weights.filenames[0]
    if _hf_offline():
        raise CheckpointError(
            f"{wanted} is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it "
            f"cannot be fetched. " + _where_to_get_it(screen)
        )
    unreachable = _hub_unreachable()
    if unreachable:
        raise CheckpointError(
            f"{wanted} is not in the Hugging Face cache and the Hub cannot be reached "
            f"({unreachable}). " + _where_to_get_it(screen)
        )
    log.info("fetching %s from %s into the Hugging Face cache", wanted, weights.url)
    try:
        path = hf_hub_download(weights.repo_id, wanted, etag_timeout=10)
    except Exception as exc:  # network errors come in many types; all mean the same here
        raise CheckpointError(
            f"could not fetch {wanted} from {weights.url} ({type(exc).__name__}: {exc}). "
            + _where_to_get_it(screen)
        ) from exc
    return Path(path), "downloaded"


def _hub_unreachable(timeout: float = 5.0) -> Optional[str]:
    """Why the Hub's host cannot be reached, or None. One quick TCP connect, so that an offline
    machine fails in seconds instead of going through huggingface_hub's retries with backoff."""
    import socket
    from urllib.parse import urlparse

    import huggingface_hub.constants as hf_constants

    url = urlparse(hf_constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port}: {exc}"
    return None


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_of(path: PathLike, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path) -> None:
    """Raise :class:`CheckpointError` if ``path`` cannot possibly be a checkpoint."""
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory; --checkpoint takes the checkpoint file itself, "
            f"e.g. {path / RELEASED_FILENAME}"
        )
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}. " + _where_to_get_it())
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(256)
    if head.startswith(LFS_POINTER_PREFIX):
        raise CheckpointError(
            f"{path} is a Git LFS pointer ({size} bytes), not the weights: the repository was cloned "
            f"without LFS. Run `git lfs pull` in that repository, or download the file from {HF_URL} ."
        )
    if size < MIN_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path} is {size} bytes, far too small to be a CorridorKey checkpoint (the released file is "
            f"~400 MB): probably an interrupted download or an error page saved under that name. "
            + _where_to_get_it()
        )


# --------------------------------------------------------------------------- reading


def read_state_dict(path: PathLike) -> Dict[str, Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict (wrappers and prefixes removed)."""
    path = Path(path)
    check_file(path)
    if path.suffix.lower() == ".safetensors":
        raw = _read_safetensors(path)
    else:
        raw = _read_torch(path)
    return _unwrap(raw, path)


def _read_safetensors(path: Path) -> Mapping:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it is probably truncated or corrupt. "
            f"Download it again."
        ) from exc


def _read_torch(path: Path) -> object:
    if not zipfile.is_zipfile(path):
        # Every torch.save since PyTorch 1.6 writes a zip archive; a cut-off download loses its
        # central directory, so this is the usual sign of truncation.
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint: it is truncated or corrupt (no zip central "
            f"directory; a partial download looks like this), or not a torch.save file at all. "
            f"Download it again, and compare its SHA-256 with the published one."
        )
    check_zip_crcs(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "UnpicklingError" in type(exc).__name__:
            raise CheckpointError(
                f"{path} holds Python objects besides tensors, which the safe loader refuses "
                f"(torch.load weights_only=True: {text.splitlines()[0] if text else exc!r}). Re-save only "
                f"the model's state dict (torch.save(model.state_dict(), path)) and load that."
            ) from exc
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {text[:300]}); it is "
            f"probably truncated or corrupt. Download it again."
        ) from exc


def check_zip_crcs(path: Path) -> None:
    """Every member of a ``torch.save`` zip against the CRC-32 its header records (:meth:`zipfile.ZipFile.testzip`).

    ``torch.load`` does not check them, so bytes flipped inside a tensor (a bad disk, a
    damaged copy) would load as wrong weights. Reading the whole file costs about what
    hashing it does (docs/export.md gives the time for a ~400 MB file).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}); it is "
                              f"truncated or corrupt. Download it again.") from exc
    if bad is not None:
        raise CheckpointError(
            f"{path} is corrupt: the data of {bad} inside it does not match its recorded CRC-32 (damaged on disk "
            f"or in a copy). Download it again, and compare its SHA-256 with the published one.")


def _is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _unwrap(raw: object, path: Path) -> Dict[str, Tensor]:
    state = raw
    if isinstance(raw, Mapping) and not _is_tensor_dict(raw):
        for key in WRAPPER_KEYS:
            if _is_tensor_dict(raw.get(key)):
                log.debug("%s: using the state dict under %r", path, key)
                state = raw[key]
                break
        else:
            keys = ", ".join(repr(k) for k in list(raw)[:8])
            raise CheckpointError(
                f"{path} holds no model state dict: expected tensors at the top level or under one of "
                f"{', '.join(WRAPPER_KEYS)}; found keys {keys}. It may be an optimizer or training-state "
                f"file rather than model weights."
            )
    if not _is_tensor_dict(state):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(raw).__name__}).")
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        for prefix in STRIPPED_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


# --------------------------------------------------------------------------- matching the network


def grid_img_size(pos_embed: Tensor) -> int:
    """Model resolution implied by a ``[1, N, C]`` pos_embed (a square grid of S/4 x S/4 tokens)."""
    n = pos_embed.shape[1]
    side = math.isqrt(n)
    if side * side != n:
        raise CheckpointError(f"{POS_EMBED_KEY} has {n} positions, not a square grid: not a Hiera checkpoint")
    return side * 4


def resize_pos_embed(pos_embed: Tensor, img_size: int) -> Tensor:
    """Bicubically resize a ``[1, g*g, C]`` pos_embed to the ``(S/4)^2`` grid of ``img_size``."""
    _, n, c = pos_embed.shape
    old = math.isqrt(n)
    new = img_size // 4
    grid = pos_embed.float().reshape(1, old, old, c).permute(0, 3, 1, 2)  # [1, C, g, g]
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new * new, c).to(pos_embed.dtype)


def _guess_what(keys: List[str]) -> str:
    if any(k.startswith("encoder.model.") for k in keys) and any(k.startswith("alpha_decoder.") for k in keys):
        return "a GreenFormer checkpoint of another architecture or version than CorridorKey v1.0"
    if any(k.startswith(("blocks.", "patch_embed.")) for k in keys):
        return "a bare Hiera backbone (e.g. timm's ImageNet weights), not a CorridorKey checkpoint"
    return "not a CorridorKey GreenFormer checkpoint"


def _first(keys: List[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def match_state_dict(state: Dict[str, Tensor], model: GreenFormer, path: PathLike) -> bool:
    """Check ``state`` against ``model`` strictly; resize pos_embed in place if needed. Returns whether it was."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
        raise CheckpointError(
            f"{path} does not match the CorridorKey network: {'; '.join(parts)}. "
            f"This looks like {_guess_what(sorted(state))}."
        )
    resized = False
    if POS_EMBED_KEY in state and state[POS_EMBED_KEY].shape != expected[POS_EMBED_KEY].shape:
        pos = state[POS_EMBED_KEY]
        if pos.dim() != 3 or pos.shape[2] != expected[POS_EMBED_KEY].shape[2]:
            raise CheckpointError(
                f"{path}: {POS_EMBED_KEY} has shape {list(pos.shape)}, expected [1, N, "
                f"{expected[POS_EMBED_KEY].shape[2]}]. " f"This looks like {_guess_what(sorted(state))}."
            )
        log.info("resizing %s from a %d px grid to %d px (bicubic)", POS_EMBED_KEY, grid_img_size(pos), model.img_size)
        state[POS_EMBED_KEY] = resize_pos_embed(pos, model.img_size)
        resized = True
    wrong = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(
            f"{path}: {len(wrong)} tensor(s) have the wrong shape: {_first(wrong, 3)}. "
            f"This looks like {_guess_what(sorted(state))}."
        )
    return resized


def load_model(checkpoint: Optional[PathLike] = None, img_size: int = DEFAULT_IMG_SIZE,
               device: Union[str, torch.device] = "cpu",
               screen: str = "green") -> Tuple[GreenFormer, CheckpointInfo]:
    """Build :class:`GreenFormer` at ``img_size`` and load ``checkpoint`` strictly (eval mode, fp32).

    ``checkpoint=None`` means the released file of ``screen`` ("green" or "blue") from the
    Hugging Face cache (fetched if absent). The weights cannot tell a green checkpoint from a
    blue one: ``screen`` is recorded in the returned info and logged with the file used.
    Raises :class:`CheckpointError` with a message that says what was wrong and what to do.
    """
    released_weights(screen)
    try:
        check_img_size(img_size)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if checkpoint is None:
        path, source = find_released_checkpoint(screen)
    else:
        path, source = Path(checkpoint).expanduser(), "user path"
    check_file(path)
    log.info("hashing %s", path)
    digest = sha256_of(path)
    published = published_sha256(path.name) if source != "user path" else RELEASED_SHA256
    is_released = digest == RELEASED_SHA256 or (published is not None and digest == published)
    if source != "user path" and published is not None and digest != published:
        raise CheckpointError(
            f"{path} (from the Hugging Face cache) has SHA-256 {digest}, not the published {published}: "
            f"the cached file is damaged or was replaced. Delete it and run again to fetch a fresh copy, or "
            f"pass it with --checkpoint PATH if it is a file you meant to use."
        )
    if is_released:
        what = "the released CorridorKey_v1.0.pth"
    elif source != "user path":
        what = f"released {path.name}; no SHA-256 is published for it to compare with, so it is recorded only"
    else:
        what = "not the released file; using it as given"
    log.info("%s-screen model: %s, SHA-256 %s (%s)", screen, path, digest, what)
    state = read_state_dict(path)
    pos = state.get(POS_EMBED_KEY)
    ckpt_size = grid_img_size(pos) if pos is not None and pos.dim() == 3 else img_size
    model = GreenFormer(img_size)
    resized = match_state_dict(state, model, path)
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    info = CheckpointInfo(path=str(path.absolute()), sha256=digest, is_released_file=is_released, source=source,
                          screen=screen, img_size=img_size, checkpoint_img_size=ckpt_size,
                          pos_embed_resized=resized)
    return model, info


# ---- issue #27: one network at two model resolutions (the .pt's preview path, `corridorkey run --quality`) ----


def share_weights(model: torch.nn.Module, source: torch.nn.Module) -> List[str]:
    """Make ``model`` use ``source``'s tensor for every parameter and buffer of the same name, shape and value.

    Traced networks keep the tensors of the eager module and ``torch.jit.save`` stores a
    storage once however often it is referenced, so a file holding both networks stores
    the weights once (docs/export.md). Returns the names left apart: those that depend on
    the model resolution (``pos_embed``).
    """
    theirs = dict(source.named_parameters())
    theirs.update(source.named_buffers())
    apart = []
    for owner_name, owner in model.named_modules():
        for slots in (owner._parameters, owner._buffers):
            for name, tensor in list(slots.items()):
                if tensor is None:  # e.g. a conv without bias
                    continue
                full = f"{owner_name}.{name}" if owner_name else name
                other = theirs.get(full)
                if other is None or other.shape != tensor.shape or other.dtype != tensor.dtype \
                        or not torch.equal(other, tensor):
                    apart.append(full)
                else:
                    slots[name] = other
    return apart


def model_at_size(model: GreenFormer, img_size: int, pos_embed: Optional[Tensor] = None) -> GreenFormer:
    """``model``'s network at another model resolution, sharing its weight tensors (:func:`share_weights`).

    Only what depends on S is its own: the position embedding, resized bicubically to the
    new grid from ``pos_embed`` (give the checkpoint's, as :func:`load_model` resizes it for
    any S; default: ``model``'s, the same when ``model`` runs at the checkpoint's resolution).
    Raises ``ValueError`` for an unsupported size or if anything but ``pos_embed`` differs.
    """
    img_size = check_img_size(img_size)
    other = GreenFormer(img_size).eval()
    state = {k: v for k, v in model.state_dict().items() if k != POS_EMBED_KEY}
    state[POS_EMBED_KEY] = resize_pos_embed(model.state_dict()[POS_EMBED_KEY] if pos_embed is None else pos_embed,
                                            img_size)
    other.load_state_dict(state, strict=True)
    apart = share_weights(other, model)
    if apart != [POS_EMBED_KEY]:
        raise ValueError(f"the network at {img_size} px could not share the weights of the one at {model.img_size} "
                         f"px: {', '.join(apart[:5])} differ (expected only {POS_EMBED_KEY})")
    return other
