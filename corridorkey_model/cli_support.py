"""What the project's command lines share: a finite-number option type, SIGTERM as Ctrl-C, and the one
warning filter (``export-torchscript``, ``corridorkey``)."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import warnings
from typing import Any, Iterator, Optional

import click

#: torch >= 2.10 marks these TorchScript entry points deprecated (FutureWarning). TorchScript is what
#: Nuke's Inference node runs, so the command lines silence exactly these (pyproject.toml's pytest
#: filterwarnings names the same five); every other warning is shown.
TORCHSCRIPT_DEPRECATED = ("script", "trace", "trace_method", "save", "load")


def silence_torchscript_deprecation() -> None:
    """Ignore torch's "`torch.jit.<name>` is deprecated" FutureWarnings for :data:`TORCHSCRIPT_DEPRECATED`, nothing else."""
    for name in TORCHSCRIPT_DEPRECATED:
        warnings.filterwarnings("ignore", message=rf"`torch\.jit\.{name}` is deprecated", category=FutureWarning)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block SIGTERM (SIGBREAK on Windows), what a farm, CI or ``timeout`` sends to cancel, raises
    ``KeyboardInterrupt`` as Ctrl-C does, so the same cleanup runs (temporary files removed, nothing
    half-written). Only in the main thread (where Python delivers signals); previous handlers are restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signals = [getattr(signal, n) for n in ("SIGTERM", "SIGBREAK") if hasattr(signal, n)]
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and infinities (click's range test lets NaN through:
    every comparison with NaN is false). A usage error, exit status 2."""

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number; give one in {self._describe_range()}", param, ctx)
        return rv
