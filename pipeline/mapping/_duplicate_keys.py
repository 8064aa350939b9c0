"""Find keys used twice in one file without keeping the keys: 8-byte hashes in sorted runs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["SeenKeys", "key_hashes"]


def key_hashes(parts: list[list[str]]) -> npt.NDArray[np.int64]:
    """A 64-bit hash of each row's key, combined from its escaped parts without joining them."""
    combined = np.zeros(len(parts[0]), dtype=np.uint64)
    for part in parts:
        combined = combined * np.uint64(1_000_003) + np.fromiter(map(hash, part), np.int64, len(part)).view(np.uint64)
    return combined.view(np.int64)


class SeenKeys:
    """The keys already seen in this file, as 8-byte hashes with the line where each first appeared.

    The only state that grows with the file (16 bytes a row). Hashes sit in sorted runs merged like a
    binary counter, so a file of N rows costs O(N log N) and is searched in O(log N) runs.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []

    def check(
        self, key_hashes: npt.NDArray[np.int64], lines: npt.NDArray[np.int64], usable: npt.NDArray[np.bool_]
    ) -> dict[int, int]:
        """Record the usable rows' key hashes; return {row index: first line} for those already seen."""
        idx = np.flatnonzero(usable)
        if len(idx) == 0:
            return {}
        hashes = key_hashes[idx]
        order = np.argsort(hashes, kind="stable")
        sorted_h, sorted_lines, sorted_idx = hashes[order], lines[idx][order], idx[order]
        first_in_group = np.ones(len(sorted_h), dtype=bool)
        first_in_group[1:] = sorted_h[1:] != sorted_h[:-1]
        group = np.cumsum(first_in_group) - 1  # each row's group of equal hashes within the chunk
        new_h, first_line = sorted_h[first_in_group], sorted_lines[first_in_group]
        hit = np.zeros(len(new_h), dtype=bool)
        for run_h, run_lines in self._runs:
            pos = np.searchsorted(run_h, new_h).clip(0, len(run_h) - 1)
            found = run_h[pos] == new_h
            first_line = np.where(found, run_lines[pos], first_line)
            hit |= found
        later = ~first_in_group | hit[group]  # a repeat within the chunk, or of an earlier chunk
        result = dict(zip(sorted_idx[later].tolist(), first_line[group[later]].tolist(), strict=True))
        if (~hit).any():
            self._runs.append((new_h[~hit], first_line[~hit]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(_merge_runs(older, newer))
        return result


def _merge_runs(
    older: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    newer: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Merge two sorted runs of (hash, line) in linear time (a stable sort finds the two runs and merges them)."""
    hashes = np.concatenate((older[0], newer[0]))
    order = np.argsort(hashes, kind="stable")
    return hashes[order], np.concatenate((older[1], newer[1]))[order]
