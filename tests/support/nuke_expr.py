"""A small evaluator for Nuke's expression language and the few TCL commands gizmos use (tests only).

Foundry's references for what is modelled (Nuke User Guide, "Expressions"; Nuke's TCL
reference, "TCL commands"):

* Expressions are C-like: numbers, ``( )``, unary ``-`` and ``!``, ``* / %``, ``+ -``,
  ``< > <= >=``, ``== !=``, ``&&``, ``||`` and ``cond ? a : b`` with C precedence; a comparison
  or logical operator gives 1 or 0.
* A name is a knob of this node (``width``), a knob of another node (``Plate.width``,
  ``parent.screen``: the enclosing group, ``root.proxy``: the script's Root), or, in an
  Expression node, a channel (``r g b a``) or a pixel coordinate (``x y``). A menu knob's
  value in an expression is its index (Nuke User Guide: "Enumeration knobs return the
  index of the selected item").
* Functions: ``min max clamp abs floor ceil int pow`` (the User Guide's list of expression
  functions has them; nothing else is modelled).
* ``[cmd args]`` inside an expression is TCL, evaluated first and replaced by its result
  (``[exists parent.input1]``, ``[value parent.screen]``): see :func:`tcl_eval`.

Values are floats or NumPy arrays (an Expression node evaluates once over a whole image),
so ``?:``, ``&&`` and ``||`` are written with ``np.where`` / ``np.logical_*``.
A construct outside this subset raises :class:`ExprError` naming it: extend the parser
(``_BINARY``, ``FUNCTIONS``) rather than let a gizmo's expression be skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple, Union

import numpy as np

Value = Union[float, np.ndarray]


class ExprError(ValueError):
    """An expression or TCL command outside the modelled subset, or one that cannot be evaluated."""


_TOKEN = re.compile(r"""
    (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%<>!?:(),])
  | (?P<tcl>\[)
  | (?P<space>\s+)
""", re.VERBOSE)

#: binary operators: precedence (higher binds tighter, C's order) and the function.
_BINARY: Dict[str, Tuple[int, Callable[[Value, Value], Value]]] = {
    "||": (1, lambda a, b: np.logical_or(a, b) * 1.0),
    "&&": (2, lambda a, b: np.logical_and(a, b) * 1.0),
    "==": (3, lambda a, b: np.equal(a, b) * 1.0),
    "!=": (3, lambda a, b: np.not_equal(a, b) * 1.0),
    "<": (4, lambda a, b: np.less(a, b) * 1.0),
    ">": (4, lambda a, b: np.greater(a, b) * 1.0),
    "<=": (4, lambda a, b: np.less_equal(a, b) * 1.0),
    ">=": (4, lambda a, b: np.greater_equal(a, b) * 1.0),
    "+": (5, lambda a, b: a + b),
    "-": (5, lambda a, b: a - b),
    "*": (6, lambda a, b: a * b),
    "/": (6, lambda a, b: a / b),
    "%": (6, lambda a, b: np.fmod(a, b)),
}

FUNCTIONS: Dict[str, Callable[..., Value]] = {
    "min": np.minimum, "max": np.maximum, "abs": np.abs, "floor": np.floor, "ceil": np.ceil,
    "int": np.trunc, "pow": np.power, "clamp": lambda v, lo=0.0, hi=1.0: np.clip(v, lo, hi),
}


def _scalar(value: Value) -> Value:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return float(value)
    return value


def matching_bracket(text: str, i: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``text[i]`` (nested brackets and braces respected)."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "[":
            depth += 1
        elif text[j] == "]":
            depth -= 1
            if depth == 0:
                return j
    raise ExprError(f"unbalanced '[' in {text!r}")


def unquote_expression(text: str) -> str:
    """The expression of a knob written ``{{"..."}}``: quotes removed, ``\\[`` and ``\\]`` unescaped."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.replace("\\[", "[").replace("\\]", "]").replace('\\"', '"')


@dataclass(frozen=True)
class Context:
    """What names mean while one expression is evaluated.

    ``lookup(path)``: a dotted name split at the dots -> its value (a knob, or a channel).
    ``tcl(command)``: the result of one TCL command (the text between ``[`` and ``]``).
    """

    lookup: Callable[[Tuple[str, ...]], Value]
    tcl: Callable[[str], str]


class _Parser:
    def __init__(self, text: str, ctx: Context):
        self.text, self.ctx = text, ctx
        self.tokens: List[Tuple[str, object]] = []
        i = 0
        while i < len(text):
            m = _TOKEN.match(text, i)
            if m is None:
                raise ExprError(f"unsupported character {text[i]!r} at {i} in expression {text!r}")
            kind = m.lastgroup
            if kind == "tcl":
                j = matching_bracket(text, i)
                self.tokens.append(("num", _number(ctx.tcl(text[i + 1:j]), text)))
                i = j + 1
                continue
            if kind == "num":
                self.tokens.append(("num", float(m.group())))
            elif kind != "space":
                self.tokens.append((kind, m.group()))
            i = m.end()
        self.pos = 0

    def peek(self) -> Tuple[str, object]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", None)

    def take(self, op: str = None) -> Tuple[str, object]:
        tok = self.peek()
        if op is not None and tok != ("op", op):
            raise ExprError(f"expected {op!r} at token {self.pos} of expression {self.text!r}, found {tok[1]!r}")
        self.pos += 1
        return tok

    def parse(self) -> Value:
        value = self.ternary()
        if self.peek()[0] != "end":
            raise ExprError(f"unexpected {self.peek()[1]!r} in expression {self.text!r}")
        return _scalar(value)

    def ternary(self) -> Value:
        cond = self.binary(1)
        if self.peek() == ("op", "?"):
            self.take("?")
            a = self.ternary()
            self.take(":")
            b = self.ternary()
            return np.where(np.asarray(cond) != 0, a, b) if isinstance(cond, np.ndarray) or isinstance(
                a, np.ndarray) or isinstance(b, np.ndarray) else (a if cond != 0 else b)
        return cond

    def binary(self, min_prec: int) -> Value:
        left = self.unary()
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in _BINARY or _BINARY[op][0] < min_prec:
                return left
            prec, fn = _BINARY[op]
            self.take()
            right = self.binary(prec + 1)
            left = fn(left, right)

    def unary(self) -> Value:
        kind, op = self.peek()
        if (kind, op) == ("op", "-"):
            self.take()
            return -self.unary()
        if (kind, op) == ("op", "+"):
            self.take()
            return self.unary()
        if (kind, op) == ("op", "!"):
            self.take()
            return np.logical_not(self.unary()) * 1.0
        return self.atom()

    def atom(self) -> Value:
        kind, tok = self.take()
        if kind == "num":
            return tok
        if (kind, tok) == ("op", "("):
            value = self.ternary()
            self.take(")")
            return value
        if kind == "name":
            if self.peek() == ("op", "("):
                if tok not in FUNCTIONS:
                    raise ExprError(f"function {tok!r} is not modelled (expression {self.text!r}); add it to "
                                    f"nuke_expr.FUNCTIONS with its Foundry reference")
                self.take("(")
                args = [self.ternary()]
                while self.peek() == ("op", ","):
                    self.take(",")
                    args.append(self.ternary())
                self.take(")")
                return FUNCTIONS[tok](*args)
            return self.ctx.lookup(tuple(tok.split(".")))
        raise ExprError(f"unexpected {tok!r} in expression {self.text!r}")


def _number(text: str, where: str) -> float:
    text = text.strip()
    if text in ("true", "false"):  # TCL booleans (Nuke writes Bool knobs so)
        return float(text == "true")
    try:
        return float(text)
    except ValueError:
        raise ExprError(f"TCL result {text!r} is not a number (in {where!r})") from None


def evaluate(text: str, ctx: Context) -> Value:
    """The value of a Nuke expression."""
    return _Parser(unquote_expression(text), ctx).parse()


# --------------------------------------------------------------------------- TCL


def tcl_split(text: str) -> List[str]:
    """A TCL list or command line -> words (``{...}`` groups one word, braces removed)."""
    words, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "{":
            depth, j = 0, i
            while j < n:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            words.append(text[i + 1:j])
            i = j + 1
        elif text[i] == '"':
            j = text.index('"', i + 1)
            words.append(text[i + 1:j])
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            words.append(text[i:j])
            i = j
    return words


def tcl_list(items: Sequence[str]) -> str:
    """Words -> a TCL list (an item with a space is braced)."""
    return " ".join("{" + s + "}" if (not s or any(c.isspace() for c in s)) else s for s in items)


def _split_top(text: str) -> List[str]:
    """Words of a TCL command, ``[...]`` and ``{...}`` kept whole (their contents are one word)."""
    words, buf, depth = [], [], 0
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch.isspace() and depth == 0:
            if buf:
                words.append("".join(buf))
                buf = []
        else:
            buf.append(ch)
    if buf:
        words.append("".join(buf))
    return words


def tcl_substitute(text: str, run: Callable[[List[str]], str]) -> str:
    """``text`` with every ``[command ...]`` replaced by its result (a result is never split again)."""
    text = text.replace("\\[", "[").replace("\\]", "]")
    out, i = [], 0
    while i < len(text):
        if text[i] == "[":
            j = matching_bracket(text, i)
            out.append(tcl_eval(text[i + 1:j], run))
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def tcl_eval(command: str, run: Callable[[List[str]], str]) -> str:
    """One TCL command (no surrounding brackets): each word's brackets substituted (one word each), then run."""
    words = []
    for word in _split_top(command.replace("\\[", "[").replace("\\]", "]")):
        if word.startswith("{") and word.endswith("}"):
            words.append(word[1:-1])
        else:
            words.append(tcl_substitute(word, run))
    return run(words)


def lsearch_inline(items: Sequence[str], pattern: str) -> str:
    """TCL ``lsearch -inline LIST PATTERN``: the first item matching the glob pattern, or ``""``."""
    import fnmatch

    for item in items:
        if fnmatch.fnmatchcase(item, pattern):
            return item
    return ""
