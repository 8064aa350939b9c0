"""Find keys used twice in one file without keeping the keys: 8-byte hashes in sorted runs.

A key seen again is either the same booking on another line (the byte-identical body: per-charge exports
repeat a booking once per charge) or a conflict (another body under the same key). Telling them apart
needs only an 8-byte hash of the first line's body beside the key's.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["NO_BODY", "KeySeen", "SeenKeys", "body_hashes", "key_hashes"]

NO_BODY = 0  # the body hash of a row without a usable body: equal to no other row's


def key_hashes(parts: list[list[str]]) -> npt.NDArray[np.int64]:
    """A 64-bit hash of each row's key, combined from its escaped parts without joining them."""
    combined = np.zeros(len(parts[0]), dtype=np.uint64)
    for part in parts:
        combined = combined * np.uint64(1_000_003) + np.fromiter(map(hash, part), np.int64, len(part)).view(np.uint64)
    return combined.view(np.int64)


def body_hashes(body_lines: bytes, bad: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """A 64-bit hash of each row's body (BODY_LINES: the bodies newline-joined); NO_BODY where the row has none
    (BAD), never NO_BODY otherwise.

    Each line is hashed with its newline, one at a time: no list of the chunk's bodies is made (a third of
    the time a split takes, and no chunk-sized peak of memory).
    """
    n = len(bad)
    if n == 0:
        return np.zeros(0, np.int64)
    hashes = np.fromiter(map(hash, io.BytesIO(body_lines)), np.int64, n)
    hashes[-1] = hash(body_lines[body_lines.rfind(b"\n") + 1 :] + b"\n")  # the last line has no newline of its own
    hashes[hashes == NO_BODY] = 1
    hashes[bad] = NO_BODY
    return hashes


class KeySeen(NamedTuple):
    """A row whose key an earlier line used: that line, and whether this row's body is byte-identical to its."""

    first_line: int
    same_body: bool


_Run = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]  # key hashes, lines, body hashes


class SeenKeys:
    """The keys already seen in this file, as 8-byte hashes with the line where each first appeared and an
    8-byte hash of that line's body.

    The only state that grows with the file (24 bytes a row). Hashes sit in sorted runs merged like a
    binary counter, so a file of N rows costs O(N log N) and is searched in O(log N) runs.
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []

    def check(
        self,
        key_hashes: npt.NDArray[np.int64],
        body_hashes: npt.NDArray[np.int64],
        lines: npt.NDArray[np.int64],
        usable: npt.NDArray[np.bool_],
    ) -> dict[int, KeySeen]:
        """Record the usable rows' key hashes; return {row index: KeySeen} for those already seen."""
        idx = np.flatnonzero(usable)
        if len(idx) == 0:
            return {}
        hashes = key_hashes[idx]
        order = np.argsort(hashes, kind="stable")
        sorted_h, sorted_lines, sorted_idx = hashes[order], lines[idx][order], idx[order]
        sorted_bodies = body_hashes[idx][order]
        first_in_group = np.ones(len(sorted_h), dtype=bool)
        first_in_group[1:] = sorted_h[1:] != sorted_h[:-1]
        group = np.cumsum(first_in_group) - 1  # each row's group of equal hashes within the chunk
        new_h, first_line = sorted_h[first_in_group], sorted_lines[first_in_group]
        first_body = sorted_bodies[first_in_group]
        hit = np.zeros(len(new_h), dtype=bool)
        for run_h, run_lines, run_bodies in self._runs:
            pos = np.searchsorted(run_h, new_h).clip(0, len(run_h) - 1)
            found = run_h[pos] == new_h
            first_line = np.where(found, run_lines[pos], first_line)
            first_body = np.where(found, run_bodies[pos], first_body)
            hit |= found
        later = ~first_in_group | hit[group]  # a repeat within the chunk, or of an earlier chunk
        same = (sorted_bodies == first_body[group]) & (sorted_bodies != NO_BODY)
        result = {
            i: KeySeen(line, bool(s))
            for i, line, s in zip(
                sorted_idx[later].tolist(), first_line[group[later]].tolist(), same[later].tolist(), strict=True
            )
        }
        if (~hit).any():
            self._runs.append((new_h[~hit], first_line[~hit], first_body[~hit]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(_merge_runs(older, newer))
        return result


def _merge_runs(older: _Run, newer: _Run) -> _Run:
    """Merge two sorted runs of (hash, line, body hash) in linear time (a stable sort finds the two runs)."""
    hashes = np.concatenate((older[0], newer[0]))
    order = np.argsort(hashes, kind="stable")
    return hashes[order], np.concatenate((older[1], newer[1]))[order], np.concatenate((older[2], newer[2]))[order]
