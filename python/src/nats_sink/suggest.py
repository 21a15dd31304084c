""""Did you mean" for misspelled names, with the guest's rule (guest/src/suggest.rs)."""

from __future__ import annotations

from typing import Iterable, Optional


def _damerau_levenshtein(a: str, b: str) -> int:
    """strsim's (unrestricted) Damerau-Levenshtein distance over characters."""
    da: dict[str, int] = {}
    maxdist = len(a) + len(b)
    d = [[0] * (len(b) + 2) for _ in range(len(a) + 2)]
    d[0][0] = maxdist
    for i in range(len(a) + 1):
        d[i + 1][0], d[i + 1][1] = maxdist, i
    for j in range(len(b) + 1):
        d[0][j + 1], d[1][j + 1] = maxdist, j
    for i in range(1, len(a) + 1):
        db = 0
        for j in range(1, len(b) + 1):
            k, l = da.get(b[j - 1], 0), db
            cost = 1
            if a[i - 1] == b[j - 1]:
                cost, db = 0, j
            d[i + 1][j + 1] = min(
                d[i][j] + cost, d[i + 1][j] + 1, d[i][j + 1] + 1,
                d[k][l] + (i - k - 1) + 1 + (j - l - 1),
            )  # fmt: skip
        da[a[i - 1]] = i
    return d[len(a) + 1][len(b) + 1]


def nearest(name: str, candidates: Iterable[str]) -> Optional[str]:
    name = name.lower()
    budget = max(len(name) // 3, 1)
    best: Optional[tuple[int, str]] = None
    for c in candidates:
        dist = _damerau_levenshtein(name, c.lower())
        if dist <= budget and (best is None or dist < best[0]):
            best = (dist, c)
    return best[1] if best else None
