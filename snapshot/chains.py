"""Layer chains as shared structure: a snapshot's chain is never listed in full to merge,
diff or build a tree, so a merge that repeats its inputs (`m = merge([m, m])` forty times:
2^40 layers) costs what its distinct parts do.

A chain is a sequence of *items*: `(sid, -1)` is the single layer sid (its recorded diff);
`(sid, k)` with k >= 0 is sid's whole chain without its first k layers. A snapshot's own
chain expands by its row: a layer is its parent's chain then itself; a merge, its inputs'
chains in order; a diff row, the layers it lists; a tail row (a prefix diff), upper's chain
without lower's layers. Lengths are memoised per snapshot (committed snapshots never change).

Two operations replace listing:
- `tree_layers`: the layers whose application builds the chain's tree, each kept only at
  its last occurrence. Applying a layer again later gives every path it touches the same
  final state as its last application alone (each path ends as the last layer touching it
  left it), so the tree is the same; a subtree met again whole is skipped at once.
- `is_prefix`: whether one chain starts with another, comparing shared parts by identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llb.snapshot.db import Row
from llb.snapshot.errors import SnapshotError

Item = tuple[str, int]  # (snapshot id, -1): one layer; (snapshot id, k): its chain minus k layers

MAX_LISTED = 1 << 16  # layers a full chain listing may hold (an image of more is no image)
PREFIX_BUDGET = 1 << 20  # comparison steps before a prefix test gives up


class ChainError(SnapshotError):
    """A chain too long to list."""


class Chains:
    """Chains of the committed snapshots, read through `lineage` and `inputs` (the DB):
    lineage(sid) is sid's row, then, while a row is a layer's, its parent's row (a layer
    chain in one query, not one a layer)."""

    def __init__(self, lineage: Callable[[str], list[Row]],
                 inputs: Callable[[str], list[str]]):
        self._lineage = lineage
        self._inputs = inputs
        self._len: dict[str, int] = {}
        self._items: dict[str, list[Item]] = {}
        self._parts_of: dict[str, tuple[str, list[str]]] = {}  # sid -> _parts(sid)

    def forget(self) -> None:
        """Drop what is memoised (snapshots were removed)."""
        self._len.clear()
        self._items.clear()
        self._parts_of.clear()

    # ------------------------------------------------------------------ structure

    def _parts(self, sid: str) -> tuple[str, list[str]]:
        """(kind, the snapshots sid's chain is made of) from its row, read once (length and
        items both need it: a chain of n layers was 3n queries)."""
        got = self._parts_of.get(sid)
        if got is None:
            for row in self._lineage(sid):  # sid's row first: its parents' rows come along
                if row.id in self._parts_of:
                    break
                if row.kind == "layer":
                    self._parts_of[row.id] = "layer", [row.parent] if row.parent else []
                elif row.id == sid:
                    self._parts_of[sid] = row.kind, self._inputs(sid)
            got = self._parts_of[sid]
        return got

    def length(self, sid: str) -> int:
        """How many layers sid's chain has (repetitions counted)."""
        known = self._len.get(sid)
        if known is not None:
            return known
        stack = [sid]
        while stack:
            s = stack[-1]
            if s in self._len:
                stack.pop()
                continue
            kind, parts = self._parts(s)
            if kind == "diff":  # the layers it lists
                self._len[s] = len(parts)
                stack.pop()
                continue
            missing = [p for p in parts if p not in self._len]
            if missing:
                stack.extend(missing)
                continue
            if kind == "layer":
                n = self._len[parts[0]] + 1 if parts else 1
            elif kind == "tail":
                lower, upper = parts
                n = self._len[upper] - self._len[lower]
            else:  # merge
                n = sum(self._len[p] for p in parts)
            self._len[s] = n
            stack.pop()
        return self._len[sid]

    def items(self, sid: str) -> list[Item]:
        """sid's chain as the items it is made of, in order."""
        got = self._items.get(sid)
        if got is not None:
            return got
        kind, parts = self._parts(sid)
        if kind == "layer":
            out = [(p, 0) for p in parts] + [(sid, -1)]
        elif kind == "diff":
            out = [(p, -1) for p in parts]
        elif kind == "tail":
            lower, upper = parts
            out = [(upper, self.length(lower))]
        else:
            out = [(p, 0) for p in parts]
        self._items[sid] = out
        return out

    def size(self, item: Item) -> int:
        """Layers an item stands for."""
        sid, skip = item
        return 1 if skip < 0 else self.length(sid) - skip

    def children(self, item: Item) -> list[Item]:
        """The items a composite item `(sid, k)` expands to (its first k layers left out)."""
        sid, skip = item
        out: list[Item] = []
        for child in self.items(sid):
            n = self.size(child)
            if skip >= n:
                skip -= n
                continue
            if skip:
                out.append((child[0], child[1] + skip))  # a layer (size 1) is never cut
                skip = 0
            else:
                out.append(child)
        return out

    # ------------------------------------------------------------------ operations

    def layers(self, sid: str, limit: int = MAX_LISTED) -> list[str]:
        """Every layer of sid's chain in order, repetitions included (ChainError past
        `limit`)."""
        n = self.length(sid)
        if n > limit:
            raise ChainError(f"snapshot {sid}: its layer chain has {n} layers (a merge that "
                             f"repeats its inputs), too many to list", path=sid)
        out: list[str] = []
        stack: list[Item] = [(sid, 0)]
        while stack:
            item = stack.pop()
            if item[1] < 0:
                out.append(item[0])
            else:
                stack.extend(reversed(self.children(item)))
        return out

    def tree_layers(self, items: Iterable[Item]) -> list[str]:
        """The layers that build the tree of the chain `items`, in order, each at its last
        occurrence only (see the module docstring)."""
        seen: set[str] = set()  # layers already placed
        whole: set[str] = set()  # snapshots whose whole chain is already placed
        out: list[str] = []
        # right to left; (item, True) marks the end of a whole snapshot's chain
        stack: list[tuple[Item, bool]] = [(it, False) for it in items]
        while stack:
            (sid, skip), done = stack.pop()
            if done:
                whole.add(sid)
            elif skip < 0:
                if sid not in seen:
                    seen.add(sid)
                    out.append(sid)
            elif not (skip == 0 and sid in whole):
                if skip == 0:
                    stack.append(((sid, 0), True))
                stack.extend((c, False) for c in self.children((sid, skip)))
        out.reverse()
        return out

    def is_prefix(self, lower: str, upper: str, budget: int = PREFIX_BUDGET) -> bool | None:
        """Whether lower's chain is the start of upper's (None: not told within `budget`
        steps). Parts both share are skipped whole; others are expanded, the longer first,
        until layers can be compared."""
        a: list[Item] = [(upper, 0)]  # what is left of upper, next item on top
        b: list[Item] = [(lower, 0)]
        for _ in range(budget):
            if not b:
                return True
            if not a:
                return False
            x, y = a[-1], b[-1]
            if x == y:
                a.pop()
                b.pop()
            elif x[1] < 0 and y[1] < 0:
                return False  # two different layers
            elif y[1] < 0 or (x[1] >= 0 and self.size(x) >= self.size(y)):
                a.pop()
                a.extend(reversed(self.children(x)))
            else:
                b.pop()
                b.extend(reversed(self.children(y)))
        return None
