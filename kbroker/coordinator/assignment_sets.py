"""The assignment algebra of the modern group kinds (consumer, streams and share groups) over
``{key: partitions}`` maps, the keys being topic names, topic ids or subtopology ids:
:func:`copy_parts`, :func:`minus`, :func:`intersect`, :func:`union`, :func:`same`, and
:func:`grant` (the target partitions a member may take now because no other member still owns
them, Kafka's ``CurrentAssignmentBuilder``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

K = TypeVar("K")


def copy_parts(a: Mapping[K, Iterable[int]]) -> dict[K, set[int]]:
    """A copy without empty entries."""
    return {k: set(ps) for k, ps in a.items() if ps}


def minus(a: Mapping[K, set[int]], b: Mapping[K, set[int]]) -> dict[K, set[int]]:
    return {k: ps - b.get(k, set()) for k, ps in a.items() if ps - b.get(k, set())}


def intersect(a: Mapping[K, set[int]], b: Mapping[K, set[int]]) -> dict[K, set[int]]:
    return {k: ps & b.get(k, set()) for k, ps in a.items() if ps & b.get(k, set())}


def union(a: Mapping[K, set[int]], b: Mapping[K, set[int]]) -> dict[K, set[int]]:
    out = copy_parts(a)
    for k, ps in b.items():
        if ps:
            out.setdefault(k, set()).update(ps)
    return out


def same(a: Mapping[K, Iterable[int]], b: Mapping[K, Iterable[int]]) -> bool:
    """Equal once empty entries are left out."""
    return copy_parts(a) == copy_parts(b)


def grant(target: Mapping[K, Iterable[int]], owner: Callable[[K, int], object | None], member: object,
          held: Mapping[K, Iterable[int]] | None = None) -> tuple[dict[K, set[int]], bool]:
    """The partitions of ``target`` the member may own now (Kafka's ``CurrentAssignmentBuilder``):
    those it holds (in ``held`` when given, else as ``owner`` tells) and those no other member
    owns. The flag is False when some are still owned by another member (state UNRELEASED)."""
    granted: dict[K, set[int]] = {}
    complete = True
    for key, parts in target.items():
        mine = held.get(key, ()) if held is not None else ()
        for p in parts:
            holder = None if p in mine else owner(key, p)
            if holder is None or holder is member:
                granted.setdefault(key, set()).add(p)
            else:
                complete = False
    return granted, complete
