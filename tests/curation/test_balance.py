"""MetaCLIP balancing and concept counts in `recap curate`, on hand-made scored tables whose counts are known."""

import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from recap.curation.balance import EntryMatcher, draw, keep_probabilities, keeps, read_metadata, spacing
from recap.curation.curate import CurateConfig, curate
from recap.errors import RecapError
from recap.schema import SCORED_TABLE, table_from_rows

from .test_curate import _row

ENTRIES = ["red", "blue", "circle", "star", "red circle", "blue star", "green", "St . Louis"]


def _metaclip_matching(text, entries):
    """MetaCLIP's own substr_matching, as its code reads (the reference the fast matcher must equal)."""
    spaced = spacing(text)
    return [entry_id for entry_id, entry in enumerate(f" {e} " for e in entries) if entry in spaced]


def test_matcher_equals_metaclip_substring_matching():
    rng = random.Random(0)
    words = ["red", "blue", "circle", "star", "Red", "green", "St.", "Louis", "a", "reds", "circle,", "star!", "\t"]
    matcher = EntryMatcher(ENTRIES)
    for _ in range(500):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 9)))
        assert matcher(text) == _metaclip_matching(text, ENTRIES), text
    # "St." spaced is "St . " then " Louis": a double space, so "St . Louis" matches in neither
    assert (
        matcher("A red circle, near St. Louis.")
        == [0, 2, 4]
        == _metaclip_matching("A red circle, near St. Louis.", ENTRIES)
    )
    assert matcher("Red circles") == []  # case-sensitive and whole tokens, as MetaCLIP
    assert matcher(None) == []


def test_keep_probability_is_t_over_n_capped_at_one():
    assert keep_probabilities(np.array([0, 5, 10, 40]), 10).tolist() == [1.0, 1.0, 1.0, 0.25]


def test_any_matched_entry_keeps_the_pair():
    probabilities = np.array([0.0, 1.0])  # entry 0 keeps nothing, entry 1 everything
    assert not keeps("uid", [0], probabilities, seed=0)
    assert keeps("uid", [0, 1], probabilities, seed=0)
    assert keeps("uid", [], probabilities, seed=0)  # matches nothing: kept
    draws = [draw(3, f"u{i}", 0) for i in range(2000)]
    assert draws == [draw(3, f"u{i}", 0) for i in range(2000)] and 0.47 < np.mean(draws) < 0.53


def _scored(folder, captions, files=4):
    rows = [_row(i, re_caption=caption) for i, caption in enumerate(captions)]
    folder.mkdir()
    for part in range(files):
        chunk = rows[part::files]
        pq.write_table(table_from_rows(chunk, spec=SCORED_TABLE), folder / f"{part:05d}.parquet")
    return folder


def _captions():
    """400 head rows (red circle), 20 tail rows (blue star), 10 with both, 10 with neither."""
    return (
        ["A large red circle is in the center."] * 400
        + ["A small blue star is in the top left."] * 20
        + ["A red circle and a blue star."] * 10
        + ["An empty white picture."] * 10
    )


def _excluded(out):
    return {row["uid"]: row["reason"] for row in pq.read_table(out / "exclusions.parquet").to_pylist()}


def test_balancing_caps_head_entries_and_keeps_the_tail(tmp_path):
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(ENTRIES))
    scored = _scored(tmp_path / "scored", _captions())
    config = CurateConfig(scored=str(scored), out=str(tmp_path / "out"), metadata=str(metadata), balance=40)
    card = curate(config, progress=False)
    concepts = card["concepts"]
    assert concepts["pool"]["counts"]["red circle"] == 410 and concepts["pool"]["counts"]["blue star"] == 30
    assert concepts["pool"]["counts"]["red"] == 410 and "green" not in concepts["pool"]["counts"]
    excluded = _excluded(tmp_path / "out")
    assert set(excluded.values()) == {"balance"}
    kept = {i for i in range(440) if f"{i:032x}" not in excluded}
    assert set(range(400, 440)) <= kept  # the tail (30 < t), rows with a tail entry, and rows matching nothing
    # Head rows: each of red, circle and red circle (410 matches) keeps a row with p = 40/410, and any keeps it:
    # 1 - (1 - 40/410)^3 = 0.264 of 400, about 106 (sd 9).
    assert 70 < len(kept & set(range(400))) < 140
    assert card["funnel"][-1] == {"reason": "balance", "dropped": len(excluded), "remaining": card["rows_kept"]}
    balanced = concepts["balanced"]
    assert balanced["counts"]["blue star"] == 30 and balanced["entries_capped"] == 3  # red, circle, red circle
    assert balanced["head_share"] < concepts["pool"]["head_share"]
    card_text = (tmp_path / "out" / "data_card.md").read_text()
    assert "## Concepts" in card_text and "after balancing" in card_text
    assert (tmp_path / "out" / "concept_rank_frequency.png").stat().st_size > 1000


def test_balancing_is_seeded_and_independent_of_the_files(tmp_path):
    metadata = tmp_path / "metadata.txt"
    metadata.write_text("\n".join(ENTRIES) + "\n\n")
    outs = {}
    for name, files, seed in (("a", 4, 0), ("b", 3, 0), ("c", 4, 1)):
        scored = _scored(tmp_path / f"scored-{name}", _captions(), files=files)
        out = tmp_path / f"out-{name}"
        curate(
            CurateConfig(scored=str(scored), out=str(out), metadata=str(metadata), balance=40, balance_seed=seed),
            progress=False,
        )
        outs[name] = _excluded(out)
    assert outs["a"] == outs["b"]
    assert outs["a"] != outs["c"]


def test_counts_without_balancing_drop_nothing(tmp_path):
    metadata = tmp_path / "metadata.txt"
    metadata.write_text("\n".join(ENTRIES))
    scored = _scored(tmp_path / "scored", _captions())
    card = curate(CurateConfig(scored=str(scored), out=str(tmp_path / "out"), metadata=str(metadata)), progress=False)
    assert card["rows_kept"] == 440 and card["concepts"]["balanced"] is None
    assert card["concepts"]["pool"]["commonest"][0] == ["red", 410]
    assert card["concepts"]["pool"]["rarest"][0] == ["blue star", 30]  # ties: the later entry is the rarer
    assert "balance_seed" not in card["filters"]


def test_bad_metadata_and_options_are_named(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('["red",\n  "blue"')
    with pytest.raises(RecapError, match=r"broken\.json line \d+: not JSON"):
        read_metadata(broken)
    broken.write_text('["red", 3]')
    with pytest.raises(RecapError, match=r"broken\.json entry 1: 3 is not a non-empty string"):
        read_metadata(broken)
    with pytest.raises(RecapError, match="cannot read the metadata file"):
        read_metadata(tmp_path / "absent.txt")
    with pytest.raises(ValueError, match="balance needs the entries"):
        CurateConfig(scored="x", out="y", balance=10)
    with pytest.raises(ValueError, match="balance is how many"):
        CurateConfig(scored="x", out="y", balance=0, metadata="m")
