"""`tka log --graph`: every AUM an authority's storage holds, drawn as the tree its parent links
make, oldest first.

`tka log` lists the active chain only. A fork (two AUMs with the same parent, as a revocation
with `--fork-from` makes) leaves AUMs in storage that fork choice did not pick; the graph shows
them as well, marked *discarded*, next to the chain that won, so that what a revocation threw
away can be seen. The head is marked; every line carries the AUM's short hash, its kind and
the key IDs and votes it names, in `tka log`'s notation.

Three outputs: text for a terminal (Unicode box drawing when stdout takes UTF-8, else ASCII;
colours only on a terminal without NO_COLOR), DOT for Graphviz (`--graph=dot`), and SVG made by
Graphviz's `dot -Tsvg` (`--graph=svg`, refused in one line when Graphviz is not installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from signer.cli import UsageError
from signer.echo import clip_input, safe_text
from signer.render import aum_hash_text, aum_kind_name, tlpub
from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.errors import TKAError
from verifier.key import Key

FORMATS = ("text", "dot", "svg")
SHORT = 10  # characters of the base32 hash shown (50 bits)
DOT_TIMEOUT = 60


class GraphvizError(TKAError):
    """`--graph=svg` without a working Graphviz `dot`."""


@dataclass(frozen=True)
class Node:
    digest: bytes
    aum: AUM
    children: tuple[bytes, ...]  # the one to draw on (active, else the longest) first
    active: bool  # on the chain from its root to the head
    head: bool

    @property
    def short(self) -> str:
        return aum_hash_text(self.digest)[:SHORT]

    @property
    def kind(self) -> str:
        return aum_kind_name(self.aum.kind)


@dataclass(frozen=True)
class Graph:
    nodes: dict[bytes, Node]
    roots: tuple[bytes, ...]  # AUMs whose parent is not stored; the active one first
    head: bytes

    @property
    def discarded(self) -> int:
        return sum(not n.active for n in self.nodes.values())

    @property
    def forks(self) -> int:
        return sum(len(n.children) > 1 for n in self.nodes.values())


def build_graph(authority: Authority) -> Graph:
    """The tree of every live AUM in the authority's storage, the active chain marked."""
    storage = authority.storage
    aums: dict[bytes, AUM] = {}
    for stored in storage.all_aums():
        found = storage.aum(stored)
        if found is not None:
            aums[bytes(stored)] = found
    head = bytes(authority.head)
    aums.setdefault(head, authority.head_aum)
    children: dict[bytes, list[bytes]] = {h: [] for h in aums}
    roots: list[bytes] = []
    for h, aum in aums.items():
        parent = aum.parent
        if parent is not None and bytes(parent) in aums and bytes(parent) != h:
            children[bytes(parent)].append(h)
        else:
            roots.append(h)
    active: set[bytes] = set()
    cursor: bytes | None = head
    while cursor is not None and cursor in aums and cursor not in active:
        active.add(cursor)
        parent = aums[cursor].parent
        cursor = None if parent is None else bytes(parent)
    height = _heights(roots, children)

    def order(h: bytes) -> tuple[bool, int, bytes]:
        return (h not in active, -height.get(h, 0), h)

    nodes = {
        h: Node(h, aum, tuple(sorted(children[h], key=order)), h in active, h == head)
        for h, aum in aums.items()
    }
    return Graph(nodes, tuple(sorted(roots, key=order)), head)


def _heights(roots: Sequence[bytes], children: dict[bytes, list[bytes]]) -> dict[bytes, int]:
    """The length of the longest chain below each AUM (0 for a leaf), without recursion."""
    visit: list[bytes] = []
    stack = list(roots)
    while stack:
        h = stack.pop()
        visit.append(h)
        stack.extend(children[h])
    height: dict[bytes, int] = {}
    for h in reversed(visit):
        height[h] = max((height[c] + 1 for c in children[h]), default=0)
    return height


# -- what a line says ------------------------------------------------------------------------------


def _key_text(key: Key) -> str:
    key_id = tlpub(key.public or b"") if key.kind == 1 else f"<unsupported key kind {key.kind}>"
    return f"{key_id} votes={key.votes}"


def details(aum: AUM) -> list[str]:
    """The key IDs and votes an AUM names, as `tka log` writes them."""
    if aum.kind == MessageKind.ADD_KEY and aum.key is not None:
        return [_key_text(aum.key)]
    if aum.kind == MessageKind.REMOVE_KEY:
        return [tlpub(aum.key_id or b"")]
    if aum.kind == MessageKind.UPDATE_KEY:
        out = tlpub(aum.key_id or b"")
        return [out if aum.votes is None else f"{out} votes={aum.votes}"]
    if aum.kind == MessageKind.CHECKPOINT and aum.state is not None:
        return [_key_text(k) for k in aum.state.keys or ()]
    return []


def _tags(node: Node) -> list[str]:
    return (["head"] if node.head else []) + ([] if node.active else ["discarded"])


def _summary(graph: Graph) -> str:
    n = len(graph.nodes)
    return (
        f"{n} AUM{'s' if n != 1 else ''}, {graph.forks} fork{'s' if graph.forks != 1 else ''},"
        f" {graph.discarded} discarded; head {aum_hash_text(graph.head)}"
    )


# -- text ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Glyphs:
    head: str
    active: str
    discarded: str
    branch: str  # where a side branch leaves the line it forks from
    gutter: str  # the forked-from line running on beside a side branch


UNICODE = _Glyphs(head="◉", active="●", discarded="○", branch="├─", gutter="│ ")
ASCII = _Glyphs(head="@", active="*", discarded="x", branch="|-", gutter="| ")


def render_text(graph: Graph, unicode: bool = True, color: bool = False) -> str:
    """The tree, oldest first: each AUM's first child (the active one where there is one) goes
    on in the same column, any other child branches off to the right before it; a summary line
    last."""
    g = UNICODE if unicode else ASCII
    bold_green, dim, clear = ("\x1b[1;32m", "\x1b[2m", "\x1b[0m") if color else ("", "", "")
    lines: list[str] = []
    # (AUM, prefix of its own line, prefix of the lines after it), drawn depth first.
    stack: list[tuple[bytes, str, str]] = [(r, "", "") for r in reversed(graph.roots)]
    while stack:
        h, first, rest = stack.pop()
        node = graph.nodes[h]
        mark = g.head if node.head else g.active if node.active else g.discarded
        text = " ".join([node.short, node.kind, *details(node.aum)])
        tags = "".join(f" ({t})" if t == "head" else f" [{t}]" for t in _tags(node))
        style = bold_green if node.head else "" if node.active else dim
        lines.append(f"{first}{style}{mark} {text}{tags}{clear if style else ''}")
        if not node.children:
            continue
        main, *side = node.children
        stack.append((main, rest, rest))
        stack.extend((s, rest + g.branch, rest + g.gutter) for s in reversed(side))
    lines.append(_summary(graph))
    return "\n".join(lines) + "\n"


# -- DOT and SVG -----------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(graph: Graph) -> str:
    """A Graphviz digraph, parent above child: the active chain solid, the head doubled,
    discarded AUMs and the edges into them dashed and grey."""
    out = [
        "digraph tka {",
        "  rankdir=TB;",
        f"  label={_dot_string(_summary(graph))};",
        '  node [shape=box, fontname="monospace", fontsize=10];',
    ]
    for h in sorted(graph.nodes):
        node = graph.nodes[h]
        label_lines = [f"{node.short} {node.kind}", *details(node.aum)]
        label_lines += [f"({t})" for t in _tags(node)]
        # `\l` ends a left-aligned line; inserted after escaping so it stays an escape.
        label = "".join(_dot_string(line)[1:-1] + "\\l" for line in label_lines)
        attrs = [f'label="{label}"', f"tooltip={_dot_string(aum_hash_text(h))}"]
        if node.head:
            attrs += ["peripheries=2", "penwidth=2"]
        if not node.active:
            attrs += ["style=dashed", "color=gray50", "fontcolor=gray40"]
        out.append(f"  {_dot_string(aum_hash_text(h))} [{', '.join(attrs)}];")
    for h in sorted(graph.nodes):
        for child in graph.nodes[h].children:
            style = "" if graph.nodes[child].active else " [style=dashed, color=gray50]"
            out.append(f"  {_dot_string(aum_hash_text(h))} -> "
                       f"{_dot_string(aum_hash_text(child))}{style};")
    out.append("}")
    return "\n".join(out) + "\n"


def render_svg(dot_text: str) -> bytes:
    """`dot -Tsvg` over the DOT text."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizError(
            "--graph=svg needs Graphviz's `dot`: install graphviz (apt-get install graphviz), "
            "or use --graph=dot"
        )
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=dot_text.encode(), capture_output=True,
                              timeout=DOT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"dot -Tsvg did not finish in {DOT_TIMEOUT} s") from None
    except OSError as err:
        raise GraphvizError(f"cannot run {dot}: {err.strerror}") from None
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GraphvizError(
            f"dot -Tsvg failed (exit {proc.returncode})"
            + (f": {safe_text(reason[0])}" if reason else "")
        )
    return proc.stdout


# -- the command -----------------------------------------------------------------------------------


def show_graph(authority: Authority, fmt: str, json_flag: str | None = None) -> int:
    """`tka log --graph[=FORMAT]`: the graph on stdout."""
    if fmt not in FORMATS:
        raise UsageError(f"--graph takes {', '.join(FORMATS)}; got '{clip_input(fmt)}'")
    if json_flag is not None:
        raise UsageError("--graph and --json do not go together: use --graph=dot for a "
                         "machine-readable graph")
    graph = build_graph(authority)
    if fmt == "svg":
        svg = render_svg(render_dot(graph))
        sys.stdout.flush()
        sys.stdout.buffer.write(svg)
        sys.stdout.buffer.flush()
        return 0
    if fmt == "dot":
        sys.stdout.write(render_dot(graph))
        return 0
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    sys.stdout.write(render_text(graph, unicode=encoding == "utf8", color=color))
    return 0
