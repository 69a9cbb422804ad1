"""Lookup tables of the sweeps, per mask of already-added ring neighbours: neighbour
groups to union, 2x2 cells completed and the change of the Euler number."""

from __future__ import annotations

import numpy as np

# The 8 neighbours in ring order N, NE, E, SE, S, SW, W, NW (row, column offsets).
_RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
# The four 2x2 cells around a pixel, each as the ring bits of its other three corners.
_CELLS = (0b00000111, 0b00011100, 0b01110000, 0b11000001)


def _quad_euler(corners: int) -> int:
    """Four times a 2x2 cell's share of the 8-connected Euler number (Gray's bit quads)."""
    if corners in (0b0101, 0b1010):  # diagonal pair (corners in ring order)
        return -2
    return {1: 1, 3: -1}.get(bin(corners).count("1"), 0)


def _groups(mask: int, four: bool) -> list[int]:
    """First ring index of each group of the ring neighbours in ``mask`` that are
    connected among themselves (8-adjacent, or with ``four`` 4-adjacent: then only the
    groups holding a 4-neighbour of the pixel, the ones it joins)."""
    members = [k for k in range(8) if mask >> k & 1]
    group = {k: k for k in members}

    def root(k: int) -> int:
        while group[k] != k:
            k = group[k]
        return k

    for a in members:
        for b in members:
            (ya, xa), (yb, xb) = _RING[a], _RING[b]
            if (abs(ya - yb) + abs(xa - xb) if four else max(abs(ya - yb), abs(xa - xb))) == 1:
                group[root(a)] = root(b)
    joined = {root(k) for k in members if not four or k % 2 == 0}
    return sorted(min(k for k in members if root(k) == r) for r in joined)


def _neighbour_tables() -> tuple[np.ndarray, ...]:
    """Per mask of already-added neighbours: one ring index per group of mutually
    8-connected foreground neighbours (they are in one component already, so one union
    each) and the group count; the same for 4-connected background neighbours; the
    number of 2x2 cells that reach 3 or 4 foreground corners, and the change of four
    times the Euler number (components - holes) when the pixel turns foreground."""
    reps = np.zeros((2, 256, 4), np.int64)
    counts = np.zeros((2, 256), np.int64)
    cell_gain = np.zeros(256, np.int64)
    euler_gain = np.zeros(256, np.int64)
    for mask in range(256):
        for four in (0, 1):
            firsts = _groups(mask, bool(four))
            counts[four, mask] = len(firsts)
            reps[four, mask, : len(firsts)] = firsts
        cell_gain[mask] = sum(bin(mask & cell).count("1") >= 2 for cell in _CELLS)
        for cell in _CELLS:
            # the cell's corners in ring order around it: the pixel, then its 3 neighbours
            others = [mask >> k & 1 for k in range(8) if cell >> k & 1]
            if cell == _CELLS[3]:  # NW cell: W, NW, N in ring order
                others = [mask >> 6 & 1, mask >> 7 & 1, mask & 1]
            before = sum(bit << (i + 1) for i, bit in enumerate(others))
            euler_gain[mask] += _quad_euler(before | 1) - _quad_euler(before)
    return reps[0], counts[0], reps[1], counts[1], cell_gain, euler_gain


_REPS, _N_REPS, _REPS4, _N_REPS4, _CELL_GAIN, _EULER_GAIN = _neighbour_tables()
