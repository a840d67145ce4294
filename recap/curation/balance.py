"""Concept statistics of a release and MetaCLIP's balancing (Xu et al. 2023, "Demystifying CLIP Data").

A metadata list of entries (MetaCLIP's 500k from WordNet and Wikipedia, or the embedded world's vocabulary) is
matched against each caption as MetaCLIP's `substr_matching` does: the caption is padded with spaces and its
punctuation `, . ; : ? !` and backtick wrapped in spaces, then an entry matches where " entry " is a substring
(case-sensitive, as theirs). That is the same as an entry equalling a run of the caption's space-separated
tokens, which is how it is computed here: one dictionary lookup per token run, so the cost does not grow with the
number of entries (MetaCLIP reaches the same with an Aho-Corasick automaton).

Balancing: an entry matched by n captions keeps each of its pairs with probability min(1, t / n); a pair is kept
if any of its matched entries keeps it (pairs that match no entry are kept: MetaCLIP's pool holds only matched
pairs, a release here may hold others). The draws are a hash of (seed, uid, entry), not a stateful RNG, so the
result does not depend on the order or the number of files the rows come in. Counting and deciding are two
streaming passes over the rows (memory: the counts and the dropped rows' keys), as the pool may be 1.3 B rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from recap.errors import RecapError

_WRAPPED = (",", ".", ";", ":", "?", "!", "`")
HEAD_SHARE_OF = 0.1  # the data card's head share: the matches of the 10% most matched entries


def spacing(text: str) -> str:
    """MetaCLIP's `spacing`: pad with spaces, wrap punctuation in spaces, turn tabs and newlines into spaces."""
    spaced = f" {text} "
    for mark in _WRAPPED:
        spaced = spaced.replace(mark, f" {mark} ")
    for blank in ("\t", "\n", "\r"):
        spaced = spaced.replace(blank, " ")
    return spaced


class EntryMatcher:
    """Which metadata entries a caption matches (entry ids, sorted)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = list(entries)
        self.by_length: dict[int, dict[str, int]] = {}  # tokens in the entry -> entry -> id
        for entry_id, entry in enumerate(self.entries):
            self.by_length.setdefault(entry.count(" ") + 1, {}).setdefault(entry, entry_id)

    def __call__(self, text: str | None) -> list[int]:
        if not text:
            return []
        tokens = spacing(text).split(" ")
        found = set()
        for length, lookup in self.by_length.items():
            for start in range(len(tokens) - length + 1):
                entry_id = lookup.get(" ".join(tokens[start : start + length]))
                if entry_id is not None:
                    found.add(entry_id)
        return sorted(found)


def read_metadata(path: str | Path) -> list[str]:
    """Entries from a JSON list of strings (MetaCLIP's metadata.json) or a text file with one entry per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RecapError(f"cannot read the metadata file {path} ({error.strerror or error})") from None
    if path.suffix == ".json":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise RecapError(
                f"{path} line {error.lineno}: not JSON ({error.msg}); give a JSON list of strings"
            ) from None
        if not isinstance(entries, list):
            raise RecapError(f"{path} holds a JSON {type(entries).__name__}; give a JSON list of strings")
        for index, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry.strip():
                raise RecapError(f"{path} entry {index}: {entry!r} is not a non-empty string")
    else:
        entries = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    entries = [entry.strip(" ") for entry in entries]
    if not entries:
        raise RecapError(f"{path} holds no metadata entries")
    return entries


def world_metadata(world: str | Path) -> list[str]:
    """The embedded world's entries: its shapes, colours and brand names, and every concept ("red heart")."""
    from recap.world.concepts import concept_name
    from recap.world.generate import load_manifest

    manifest = load_manifest(world)
    difficulty = manifest["difficulty"]
    concepts = [concept_name(shape, colour) for shape in difficulty["shapes"] for colour in difficulty["colours"]]
    return [*difficulty["shapes"], *difficulty["colours"], *manifest["vocabulary"]["brands"], *concepts]


def keep_probabilities(counts: np.ndarray, threshold: float) -> np.ndarray:
    """min(1, t / n) per entry (1 for entries never matched)."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.minimum(1.0, threshold / np.maximum(counts, 1.0))


def draw(seed: int, uid: str, entry_id: int) -> float:
    """A uniform number in [0, 1) from (seed, uid, entry): the same for a row wherever and whenever it is read."""
    digest = hashlib.blake2b(f"{seed}\x00{uid}\x00{entry_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def keeps(uid: str, entry_ids: Iterable[int], probabilities: np.ndarray, seed: int) -> bool:
    """MetaCLIP's `balance_sampling`: kept if any matched entry keeps it; a row matching nothing is kept."""
    entry_ids = list(entry_ids)
    return not entry_ids or any(draw(seed, uid, entry) < probabilities[entry] for entry in entry_ids)


def distribution(entries: Sequence[str], counts: np.ndarray, *, tail_below: int) -> dict:
    """What the data card shows of one count vector: matches, head share, the tail, and every entry's count."""
    counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    matched = counts[order][counts[order] > 0]
    head = max(1, int(round(HEAD_SHARE_OF * len(matched)))) if len(matched) else 0
    total = int(matched.sum())
    return {
        "matches": total,
        "entries_matched": int(len(matched)),
        "head_share": round(float(matched[:head].sum()) / total, 4) if total else None,
        "head_entries": head,
        "tail_below": tail_below,
        "tail_entries": int(((counts > 0) & (counts < tail_below)).sum()),
        "max_over_min": round(float(matched[0] / matched[-1]), 1) if len(matched) else None,
        "rarest": [[entries[i], int(counts[i])] for i in order[counts[order] > 0][-5:][::-1]],
        "commonest": [[entries[i], int(counts[i])] for i in order[:5] if counts[i] > 0],
        "counts": {entries[i]: int(counts[i]) for i in order if counts[i] > 0},
    }
