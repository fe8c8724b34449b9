"""Click parameter types the project's command lines share."""

from __future__ import annotations

import math
from typing import Any, Optional

import click


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and infinities (click's range test lets NaN through:
    every comparison with NaN is false). A usage error, exit status 2."""

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number; give one in {self._describe_range()}", param, ctx)
        return rv
