"""A small parser for Nuke's script syntax (.nk / .gizmo), for tests.

Covers what our generated files use and what Foundry's own gizmos look like:
nodes ``Class { knob value ... }``, ``addUserKnob {...}`` lines, quoted strings
with backslash escapes, nested braces, ``Group``/``Gizmo`` ... ``end_group``,
and the node stack (``set N [stack 0]``, ``push $N``, ``push 0``) that wires
inputs: a node with N inputs takes the top of the stack as input 0, the next
one as input 1, and so on, then is pushed itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple, Union

GROUP_CLASSES = ("Group", "Gizmo", "LiveGroup")


@dataclass(frozen=True)
class Word:
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Braced:
    """A ``{...}`` group: its raw inner text (parse it again with :func:`tokenize`)."""

    inner: str

    def words(self) -> List[Union[Word, Braced]]:
        return [t for t in tokenize(self.inner) if t is not NEWLINE]


@dataclass(frozen=True)
class Bracketed:
    inner: str


NEWLINE = Word("\n")
Token = Union[Word, Braced, Bracketed]

_ESCAPES = {"n": "\n", "t": "\t"}


class NukeScriptError(ValueError):
    pass


def _matching(text: str, i: int, open_ch: str, close_ch: str) -> int:
    """Index of the bracket closing the one at ``text[i]`` (backslash escapes and quotes respected)."""
    depth = 0
    in_quote = False
    j = i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"' and open_ch == "{":
            in_quote = not in_quote
        elif not in_quote:
            if c == open_ch:
                depth += 1
            elif c == close_ch:
                depth -= 1
                if depth == 0:
                    return j
        j += 1
    raise NukeScriptError(f"unbalanced {open_ch!r} at offset {i}")


def tokenize(text: str) -> List[Token]:
    """Words, quoted strings, ``{...}`` and ``[...]`` groups, and NEWLINE markers."""
    out: List[Token] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            out.append(NEWLINE)
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#" and (not out or out[-1] is NEWLINE):
            while i < n and text[i] != "\n":
                i += 1
        elif c == '"':
            buf = []
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    buf.append(_ESCAPES.get(text[i + 1], text[i + 1]))
                    i += 2
                else:
                    buf.append(text[i])
                    i += 1
            if i >= n:
                raise NukeScriptError("unterminated quoted string")
            out.append(Word("".join(buf), quoted=True))
            i += 1
        elif c == "{":
            j = _matching(text, i, "{", "}")
            out.append(Braced(text[i + 1:j]))
            i = j + 1
        elif c == "[":
            j = _matching(text, i, "[", "]")
            out.append(Bracketed(text[i + 1:j]))
            i = j + 1
        else:
            j = i
            buf = []
            while j < n and text[j] not in " \t\r\n{}\"[":
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            out.append(Word("".join(buf)))
            i = j
    return out


def _lines(tokens: List[Token]) -> Iterator[List[Token]]:
    line: List[Token] = []
    for t in tokens:
        if t is NEWLINE:
            if line:
                yield line
            line = []
        else:
            line.append(t)
    if line:
        yield line


@dataclass
class UserKnob:
    """One ``addUserKnob {type name [l label] [t tooltip] [R min max] [M {items}] [T text] [+FLAG]}``."""

    type_id: int
    name: str
    label: Optional[str] = None
    tooltip: Optional[str] = None
    range: Optional[Tuple[float, float]] = None
    menu: Optional[List[str]] = None
    text: Optional[str] = None
    flags: List[str] = field(default_factory=list)

    @classmethod
    def parse(cls, braced: Braced) -> UserKnob:
        words = braced.words()
        if len(words) < 2:
            raise NukeScriptError(f"addUserKnob needs a type and a name: {braced.inner!r}")
        knob = cls(int(token_text(words[0])), token_text(words[1]))
        i = 2
        while i < len(words):
            key = token_text(words[i])
            if key.startswith(("+", "-")) and key[1:].isupper():
                knob.flags.append(key)
                i += 1
            elif key == "R":
                knob.range = (float(token_text(words[i + 1])), float(token_text(words[i + 2])))
                i += 3
            elif key == "M":
                items = words[i + 1]
                knob.menu = [token_text(w) for w in items.words()] if isinstance(items, Braced) else [token_text(items)]
                i += 2
            elif key in ("l", "t", "T", "n", "N"):
                value = token_text(words[i + 1])
                if key == "l":
                    knob.label = value
                elif key == "t":
                    knob.tooltip = value
                elif key == "T":
                    knob.text = value
                i += 2
            else:
                raise NukeScriptError(f"unknown addUserKnob field {key!r} in {braced.inner!r}")
        return knob


def token_text(tok: Token) -> str:
    """A token as the text a knob holds: a word, a braced group's inside, or ``[...]`` as written."""
    if isinstance(tok, Word):
        return tok.text
    if isinstance(tok, Braced):
        return tok.inner
    return "[" + tok.inner + "]"


@dataclass(eq=False)
class Node:
    cls: str
    knobs: Dict[str, List[Token]] = field(default_factory=dict)
    user_knobs: List[UserKnob] = field(default_factory=list)
    #: knob names in the order their value lines appear (after addUserKnob lines too)
    order: List[str] = field(default_factory=list)
    inputs: List[Optional[Node]] = field(default_factory=list)
    children: List[Node] = field(default_factory=list)
    parent: Optional[Node] = None

    @property
    def name(self) -> str:
        return self.value("name", "")

    @property
    def n_inputs(self) -> int:
        return int(self.value("inputs", "1"))

    def value(self, knob: str, default: Optional[str] = None) -> Optional[str]:
        """A knob's value as plain text (a single word/string, or a brace group's inner text)."""
        toks = self.knobs.get(knob)
        if toks is None:
            return default
        return " ".join(token_text(t) for t in toks)

    def expression(self, knob: str) -> Optional[str]:
        """The expression of a knob written as ``{{expr}}``, else None."""
        toks = self.knobs.get(knob)
        if not toks or len(toks) != 1 or not isinstance(toks[0], Braced):
            return None
        inner = toks[0].words()
        if len(inner) == 1 and isinstance(inner[0], Braced):
            words = inner[0].words()
            if len(words) == 1 and isinstance(words[0], Word) and words[0].quoted:
                return words[0].text  # {{"expr"}}: the quoted form, escapes resolved
            return inner[0].inner.strip()
        return None

    def user_knob(self, name: str) -> UserKnob:
        for k in self.user_knobs:
            if k.name == name:
                return k
        raise KeyError(f"{self.cls} {self.name!r} has no user knob {name!r}")

    def node(self, name: str) -> Node:
        """A child node of a group by name."""
        for c in self.children:
            if c.name == name:
                return c
        raise KeyError(f"group {self.name!r} has no node {name!r}")

    def by_class(self, cls: str) -> List[Node]:
        return [c for c in self.children if c.cls == cls]

    def __repr__(self) -> str:
        return f"<{self.cls} {self.name}>"


def _parse_node(cls: str, body: Braced) -> Node:
    node = Node(cls)
    for line in _lines(tokenize(body.inner)):
        key = token_text(line[0])
        if key == "addUserKnob":
            if len(line) != 2 or not isinstance(line[1], Braced):
                raise NukeScriptError(f"malformed addUserKnob line in {cls}")
            node.user_knobs.append(UserKnob.parse(line[1]))
        else:
            node.knobs[key] = list(line[1:])
            node.order.append(key)
    return node


@dataclass
class Script:
    """A parsed script: its top-level nodes (a .gizmo's is the Gizmo) and top-level statements."""

    nodes: List[Node]
    statements: List[List[Token]]

    def find(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no top-level node {name!r}")

    def by_class(self, cls: str) -> List[Node]:
        return [n for n in self.nodes if n.cls == cls]


def parse(text: str) -> Script:
    """Parse a .nk / .gizmo text; connect inputs through the node stack."""
    top = Node("Root-scope")
    scopes: List[Tuple[Node, List[Optional[Node]], Dict[str, Optional[Node]]]] = [(top, [], {})]
    statements: List[List[Token]] = []
    for line in _lines(tokenize(text)):
        statements.append(line)
        head = token_text(line[0])
        group, stack, labels = scopes[-1]
        if head == "set" and len(line) == 3 and isinstance(line[2], Bracketed):
            if line[2].inner.split() != ["stack", "0"]:
                raise NukeScriptError(f"unsupported set: {line!r}")
            if not stack:
                raise NukeScriptError(f"set {token_text(line[1])} on an empty stack")
            labels[token_text(line[1])] = stack[-1]
        elif head == "push":
            ref = token_text(line[1])
            if ref == "0":
                stack.append(None)
            elif ref.startswith("$") and ref[1:] in labels:
                stack.append(labels[ref[1:]])
            else:
                raise NukeScriptError(f"push of unknown label {ref!r}")
        elif head == "end_group":
            if len(scopes) == 1:
                raise NukeScriptError("end_group without a group")
            scopes.pop()
        elif head in ("version", "define_window_layout_xml", "add_layer"):
            continue
        elif len(line) == 2 and isinstance(line[1], Braced):
            node = _parse_node(head, line[1])
            n_in = node.n_inputs if head != "Root" else 0
            # Missing stack entries are unconnected inputs (a .gizmo's own Gizmo node has none).
            node.inputs = [stack.pop() if stack else None for _ in range(n_in)]
            node.parent = group
            group.children.append(node)
            if head != "Root":  # the Root node holds settings; it is not an image node on the stack
                stack.append(node)
            if head in GROUP_CLASSES:
                scopes.append((node, [], {}))
        else:
            raise NukeScriptError(f"unsupported statement: {' '.join(token_text(t) for t in line)!r}")
    if len(scopes) != 1:
        raise NukeScriptError("group without end_group")
    return Script(top.children, statements)


def parse_serialise_knob(text: str) -> Dict[str, str]:
    """``name:value;name:{expr};`` (an Inference node's .cat knob values or links) -> dict, braces respected."""
    out: Dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \n;":
            i += 1
        if i >= n:
            break
        colon = text.index(":", i)
        name = text[i:colon].strip()
        j = colon + 1
        if j < n and text[j] == "{":
            end = _matching(text, j, "{", "}") + 1
        else:
            end = text.find(";", j)
            end = n if end < 0 else end
        out[name] = text[j:end]
        i = end
    return out


def upstream(node: Optional[Node], skip: Tuple[str, ...] = ("Dot",)) -> Optional[Node]:
    """Follow input 0 through pass-through nodes (Dots by default)."""
    while node is not None and node.cls in skip:
        node = node.inputs[0] if node.inputs else None
    return node
