"""Inode numbers ↔ bucket paths, with the kernel's lookup counts.

The kernel refers to a file by inode number until it sends ``forget``, even after the file was
unlinked or renamed (field notes). So an inode stays in the table while its lookup count is
above zero or while the core pins it (a dirty or open file); an unlinked inode keeps its number
with ``path = None``.

Not thread-safe by itself: :class:`~bucketfs.mount.fs.BucketFS` calls it with its state lock held.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT_INODE = 1


@dataclass
class Inode:
    """One table row."""

    ino: int
    path: str | None  # bucket-relative; None once unlinked
    lookups: int = 0
    pins: int = 0


def parent_of(path: str) -> str:
    """``"a/b/c"`` → ``"a/b"``; ``"c"`` → ``""``."""
    return path.rpartition("/")[0]


def join(parent: str, name: str) -> str:
    """Join a bucket-relative directory path and an entry name."""
    return f"{parent}/{name}" if parent else name


class InodeTable:
    """Path ↔ inode mapping; the root directory is inode 1 and path ``""``."""

    def __init__(self) -> None:
        self._by_ino: dict[int, Inode] = {ROOT_INODE: Inode(ROOT_INODE, "", lookups=1, pins=1)}
        self._by_path: dict[str, int] = {"": ROOT_INODE}
        self._next = ROOT_INODE + 1

    def __len__(self) -> int:
        return len(self._by_ino)

    def path(self, ino: int) -> str | None:
        """The path of ``ino`` (None if unlinked); KeyError if the inode is unknown."""
        return self._by_ino[ino].path

    def get(self, path: str) -> int | None:
        """The inode of ``path`` if it has one."""
        return self._by_path.get(path)

    def ensure(self, path: str) -> int:
        """The inode of ``path``, allocating one (with zero lookups) if needed."""
        ino = self._by_path.get(path)
        if ino is None:
            ino = self._next
            self._next += 1
            self._by_ino[ino] = Inode(ino, path)
            self._by_path[path] = ino
        return ino

    def lookup(self, path: str) -> int:
        """The inode of ``path`` with its lookup count raised by one (a reply to the kernel)."""
        ino = self.ensure(path)
        self._by_ino[ino].lookups += 1
        return ino

    def ref(self, ino: int) -> None:
        """Raise the lookup count of ``ino`` by one (a reply to the kernel by inode number)."""
        self._by_ino[ino].lookups += 1

    def pin(self, ino: int) -> None:
        """Keep ``ino`` alive whatever the kernel forgets (open or dirty)."""
        self._by_ino[ino].pins += 1

    def unpin(self, ino: int) -> None:
        """Undo one :meth:`pin`; drops the row when nothing holds it any more."""
        node = self._by_ino.get(ino)
        if node is None:
            return
        node.pins = max(0, node.pins - 1)
        self._maybe_drop(node)

    def forget(self, ino: int, count: int) -> None:
        """The kernel dropped ``count`` references."""
        node = self._by_ino.get(ino)
        if node is None or ino == ROOT_INODE:
            return
        node.lookups = max(0, node.lookups - count)
        self._maybe_drop(node)

    def unlink(self, path: str) -> int | None:
        """``path`` is gone: its inode (if any) keeps living, detached, until forgotten."""
        ino = self._by_path.pop(path, None)
        if ino is not None:
            node = self._by_ino[ino]
            node.path = None
            self._maybe_drop(node)
        return ino

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` and everything under it to ``dst`` (whatever was at ``dst`` is unlinked)."""
        self.unlink(dst)
        prefix = src + "/"
        moved = [(p, i) for p, i in self._by_path.items() if p == src or p.startswith(prefix)]
        for p, _ in moved:
            del self._by_path[p]
        for p, i in moved:
            new = dst + p[len(src) :]
            # A stale row for a descendant of dst (a replaced empty dir has none) is detached.
            old = self._by_path.pop(new, None)
            if old is not None and old != i:
                self._by_ino[old].path = None
            self._by_path[new] = i
            self._by_ino[i].path = new

    def exchange(self, a: str, b: str) -> None:
        """Swap the paths of ``a`` and ``b`` and of everything under them."""
        tmp = "\0exchange"
        self.rename(a, tmp)
        self.rename(b, a)
        self.rename(tmp, b)

    def _maybe_drop(self, node: Inode) -> None:
        if node.ino == ROOT_INODE or node.lookups > 0 or node.pins > 0:
            return
        del self._by_ino[node.ino]
        if node.path is not None and self._by_path.get(node.path) == node.ino:
            del self._by_path[node.path]
