"""Curate scored tables into a release: DataComp-style filters, exact and near duplicates, an exclusion table.

Every row of the scored tables gets at most one drop reason, the first that applies in `REASONS` order, so
the funnel always reconciles: kept + dropped = input. The filters run as one DuckDB query over the Parquet
files (out of core, so a 1.3 B-row pool works as a 1,000-row one):

    bad_input, caption_failed   the sample's status in the caption table (no image, or no recaption)
    placeholder                 the image's sha256 is shared by >= `placeholder_urls` different URLs: the
                                "image not available" picture a host returns for many links (all dropped)
    duplicate_image             the same sha256 as a row that comes first (by uid): one copy is kept
    small_image, aspect_ratio   the original size from the shard metadata (rows without it pass)
    short_alt_text, short_recaption   fewer words than asked
    duplicate_caption           the same alt-text, lower-cased with punctuation and digits removed, as an
                                earlier row (optional)
    no_clip_score, low_clip_score     below `min_score`, or outside the top `top_fraction` of all scored rows
                                (the pool's percentile, as DataComp's baselines compute it)
    balance                     MetaCLIP's balancing of the rows every other filter kept (`balance.py`): an
                                entry of the metadata matched n > `balance` times keeps each of its rows with
                                probability `balance` / n; a row stays if any of its entries keeps it

With metadata (`metadata`, or the vocabulary of `world`), the data card counts the entries the kept captions
(`balance_column`) mention, before and after balancing: head share, the tail, a rank-frequency plot.

The release keeps the scored table's columns (Recap-DataComp-1B's 11 first, then ours, `input_warning` among
them) in a stable order (source shard, key), split into `part-NNNNN.parquet` files of `rows_per_file` rows.
Scored tables written before a column was added to version 1 (`LATER_VERSION_1_COLUMNS`) are read with it null.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recap.console import LOG_FILES, progress_bar
from recap.errors import RecapError
from recap.io_utils import replace_folder
from recap.report import display_path
from recap.schema import LATER_VERSION_1_COLUMNS, SCORED_TABLE_SCHEMA, STATUS_BAD_INPUT, STATUS_CAPTION_FAILED

REASONS = (
    STATUS_BAD_INPUT,
    STATUS_CAPTION_FAILED,
    "placeholder",
    "duplicate_image",
    "small_image",
    "aspect_ratio",
    "short_alt_text",
    "short_recaption",
    "duplicate_caption",
    "no_clip_score",
    "low_clip_score",
    "balance",
)
CLIP_SCORE_COLUMNS = ("org_clip_score", "re_clip_score")
# Named filter sets; options given explicitly override a preset's.
PRESETS: dict[str, dict] = {
    # DataComp's best simple baseline: the top 30% of the pool by CLIP score of the original caption.
    "datacomp-clip-top30": {"score_column": "org_clip_score", "top_fraction": 0.3, "dedup": False},
    # The same on the recaption's score, with exact duplicates and placeholders removed first.
    "recap-clip-top30": {"score_column": "re_clip_score", "top_fraction": 0.3, "dedup": True},
}
EXCLUSIONS_FILE = "exclusions.parquet"
EXCLUSION_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("sha256", pa.string()),
        ("source_shard", pa.string()),
        ("key", pa.string()),
        ("reason", pa.string()),
    ]
)


@dataclass(kw_only=True)
class CurateConfig:
    """What `recap curate` reads, keeps and writes. None turns a filter off."""

    scored: str
    out: str
    preset: str | None = None
    score_column: str = "org_clip_score"
    min_score: float | None = None
    top_fraction: float | None = None
    min_alt_text_words: int | None = None
    min_recaption_words: int | None = None
    min_side: int | None = None
    max_aspect: float | None = None
    dedup: bool = True
    placeholder_urls: int = 3
    dedup_captions: bool = False
    rows_per_file: int = 100_000
    world: str | None = None  # a world folder: the data card adds caption quality against its ground truth
    # MetaCLIP balancing: the threshold t (None: off), the entries (a JSON list or one per line; None: the world's
    # vocabulary), the caption they are matched in (the recaption, which the release trains on; MetaCLIP matched
    # the alt-text, `org_caption`), and the seed of the keep draws.
    balance: float | None = None
    metadata: str | None = None
    balance_column: str = "re_caption"
    balance_seed: int = 0

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.score_column not in CLIP_SCORE_COLUMNS:
            raise ValueError(f"score_column must be one of {CLIP_SCORE_COLUMNS}, got {self.score_column!r}")
        if self.top_fraction is not None and not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.placeholder_urls < 2:
            raise ValueError(f"placeholder_urls must be >= 2, got {self.placeholder_urls}")
        if self.rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {self.rows_per_file}")
        if self.max_aspect is not None and self.max_aspect < 1.0:
            raise ValueError(f"max_aspect is long side / short side, so >= 1; got {self.max_aspect}")
        if self.balance is not None and self.balance <= 0:
            raise ValueError(f"balance is how many rows an entry keeps in expectation, so > 0; got {self.balance}")
        if self.balance is not None and self.metadata is None and self.world is None:
            raise ValueError("balance needs the entries to count: give metadata (a file) or world (its vocabulary)")
        if self.balance_column not in ("re_caption", "org_caption"):
            raise ValueError(f"balance_column must be re_caption or org_caption, got {self.balance_column!r}")

    @classmethod
    def with_preset(cls, preset: str | None, **options) -> CurateConfig:
        """A config from a preset's settings, overridden by the `options` that are not None (an unknown preset is
        refused by the config itself)."""
        merged = {**PRESETS.get(preset or "", {}), **{k: v for k, v in options.items() if v is not None}}
        return cls(preset=preset, **merged)

    @property
    def filters(self) -> dict:
        """The settings that decide which rows are kept (what the data card records)."""
        skip = {"scored", "out", "rows_per_file", "world"} | ({"balance_seed"} if self.balance is None else set())
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}


def scored_files(scored: str) -> list[str]:
    """The scored tables under a folder (markers, manifests and temporaries excluded), sorted."""
    folder = Path(scored)
    if not folder.is_dir():
        raise RecapError(f"{scored} is not a folder of scored tables (run `recap score` to make one)")
    files = sorted(str(path) for path in folder.glob("*.parquet") if not path.name.startswith(("_", ".")))
    if not files:
        raise RecapError(f"{scored} holds no scored tables (*.parquet); run `recap score` first")
    older = [name for name in SCORED_TABLE_SCHEMA.names if name not in LATER_VERSION_1_COLUMNS]
    for path in files:
        names = pq.read_schema(path).names
        if names not in (SCORED_TABLE_SCHEMA.names, older):  # `older`: written before a later version-1 column
            missing = [name for name in SCORED_TABLE_SCHEMA.names if name not in names]
            raise RecapError(
                f"{path} is not a scored table (missing columns {missing[:5]}); curate the output of `recap score`"
            )
    return files


def _reason_query(config: CurateConfig) -> str:
    """One row per input row with its drop reason (NULL: kept)."""
    score = config.score_column
    score_filter = config.min_score is not None or config.top_fraction is not None
    cases = [
        f"WHEN status = '{STATUS_BAD_INPUT}' THEN '{STATUS_BAD_INPUT}'",
        f"WHEN status <> 'ok' THEN '{STATUS_CAPTION_FAILED}'",
    ]
    if config.dedup:
        cases += [
            f"WHEN _sha_urls >= {int(config.placeholder_urls)} THEN 'placeholder'",
            "WHEN sha256 IS NOT NULL AND _sha_rank > 1 THEN 'duplicate_image'",
        ]
    if config.min_side is not None:
        cases.append(f"WHEN least(original_width, original_height) < {int(config.min_side)} THEN 'small_image'")
    if config.max_aspect is not None:
        ratio = "greatest(original_width, original_height) / nullif(least(original_width, original_height), 0)"
        cases.append(f"WHEN {ratio} > {float(config.max_aspect)} THEN 'aspect_ratio'")
    if config.min_alt_text_words is not None:
        cases.append(f"WHEN coalesce(org_length, 0) < {int(config.min_alt_text_words)} THEN 'short_alt_text'")
    if config.min_recaption_words is not None:
        cases.append(f"WHEN coalesce(re_length, 0) < {int(config.min_recaption_words)} THEN 'short_recaption'")
    if config.dedup_captions:
        cases.append("WHEN _caption_rank > 1 THEN 'duplicate_caption'")
    if score_filter:
        cases.append(f"WHEN {score} IS NULL THEN 'no_clip_score'")
    if config.min_score is not None:
        cases.append(f"WHEN {score} < {float(config.min_score)} THEN 'low_clip_score'")
    if config.top_fraction is not None:
        cases.append(f"WHEN _score_rank > round({float(config.top_fraction)} * _scored) THEN 'low_clip_score'")
    order = "uid NULLS LAST, source_shard, key"
    return f"""
        WITH digests AS (
            SELECT sha256, count(DISTINCT url) AS urls FROM pool WHERE sha256 IS NOT NULL GROUP BY sha256
        ),
        ranked AS (
            SELECT pool.*,
                digests.urls AS _sha_urls,
                row_number() OVER (PARTITION BY pool.sha256 ORDER BY {order}) AS _sha_rank,
                row_number() OVER (
                    PARTITION BY trim(regexp_replace(regexp_replace(lower(coalesce(org_caption, '')),
                        '[^a-z ]+', ' ', 'g'), ' +', ' ', 'g'))
                    ORDER BY {order}) AS _caption_rank,
                row_number() OVER (PARTITION BY {score} IS NULL ORDER BY {score} DESC, {order}) AS _score_rank,
                count({score}) OVER () AS _scored
            FROM pool LEFT JOIN digests USING (sha256)
        )
        SELECT * EXCLUDE (_sha_urls, _sha_rank, _caption_rank, _score_rank, _scored),
            CASE {" ".join(cases)} ELSE NULL END AS reason
        FROM ranked
    """


def _histogram(con, column: str, where: str, width: float) -> list[list[float]]:
    rows = con.execute(
        f"SELECT floor({column} / {width}) * {width} AS low, count(*) FROM curated "
        f"WHERE {column} IS NOT NULL AND {where} GROUP BY low ORDER BY low"
    ).fetchall()
    return [[float(low), int(count)] for low, count in rows]


def _stats(con, column: str, where: str) -> dict:
    mean, median = con.execute(f"SELECT avg({column}), median({column}) FROM curated WHERE {where}").fetchone()
    return {"mean": None if mean is None else round(float(mean), 3), "median": median}


def curate(config: CurateConfig, *, progress: bool = True) -> dict:
    """Filter the scored tables, write the release, the exclusion table and the data card; return the card."""
    import duckdb

    from recap.curation.data_card import write_data_card

    started = time.perf_counter()
    files = scored_files(config.scored)
    final = Path(config.out)
    staging = final.with_name(f".{final.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "release").mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    pool = con.read_parquet(files, union_by_name=True)  # tables written before a later column hold it as NULL
    absent = [name for name in LATER_VERSION_1_COLUMNS if name not in pool.columns]
    pool = pool.project(", ".join(["*"] + [f'NULL AS "{name}"' for name in absent])) if absent else pool
    pool.create_view("pool")
    con.execute(f"CREATE TEMP TABLE curated AS {_reason_query(config)}")
    concepts = _concepts(con, config, progress)
    rows_in = con.execute("SELECT count(*) FROM curated").fetchone()[0]
    counts = dict(con.execute("SELECT reason, count(*) FROM curated GROUP BY reason").fetchall())
    kept = counts.pop(None, 0)
    funnel, remaining = [], rows_in
    for reason in REASONS:
        dropped = counts.pop(reason, 0)
        remaining -= dropped
        funnel.append({"reason": reason, "dropped": dropped, "remaining": remaining})
    if counts or remaining != kept:  # the query can only produce REASONS; this guards the bookkeeping
        raise RecapError(f"curation funnel does not reconcile: {rows_in} in, {kept} kept, unknown reasons {counts}")

    columns = ", ".join(f'"{name}"' for name in SCORED_TABLE_SCHEMA.names)
    kept_query = con.sql(f"SELECT {columns} FROM curated WHERE reason IS NULL ORDER BY source_shard, key")
    parts, part, written, writer = [], 0, 0, None
    bar = progress_bar(total=kept, desc="release", unit="row", disable=not progress)
    with kept_query.to_arrow_reader(batch_size=min(config.rows_per_file, 65_536)) as batches:
        for batch in batches:
            start = 0
            while start < batch.num_rows:
                if writer is None:
                    name = f"part-{part:05d}.parquet"
                    writer = pq.ParquetWriter(staging / "release" / name, SCORED_TABLE_SCHEMA)
                    parts.append({"file": f"release/{name}", "rows": 0})
                take = min(batch.num_rows - start, config.rows_per_file - parts[-1]["rows"])
                chunk = pa.Table.from_batches([batch.slice(start, take)]).cast(SCORED_TABLE_SCHEMA)
                writer.write_table(chunk)
                parts[-1]["rows"] += take
                start, written = start + take, written + take
                bar.update(take)
                if parts[-1]["rows"] == config.rows_per_file:
                    writer.close()
                    writer, part = None, part + 1
    if writer is not None:
        writer.close()
    bar.close()
    exclusions = con.sql(
        "SELECT uid, sha256, source_shard, key, reason FROM curated WHERE reason IS NOT NULL "
        "ORDER BY source_shard, key"
    ).to_arrow_table()
    pq.write_table(exclusions.cast(EXCLUSION_SCHEMA), staging / EXCLUSIONS_FILE)

    kept_rows, scored_rows = "reason IS NULL", "status = 'ok'"
    card = {
        "rows_in": rows_in,
        "rows_kept": kept,
        "rows_dropped": rows_in - kept,
        "funnel": funnel,
        "filters": config.filters,
        "inputs": {"scored": config.scored, "tables": len(files)},
        "release": {"files": parts, "rows": written, "schema": "schemas/scored_table.v1.json"},
        "exclusions": EXCLUSIONS_FILE,
        "words": {
            "org_caption": _stats(con, "org_length", kept_rows),
            "re_caption": _stats(con, "re_length", kept_rows),
        },
        "clip_score": {
            name: {"kept": _stats(con, name, kept_rows), "scored": _stats(con, name, scored_rows)}
            for name in CLIP_SCORE_COLUMNS
        },
        "truncated_by_clip": {
            name: con.execute(f"SELECT count(*) FROM curated WHERE {name}_truncated AND {kept_rows}").fetchone()[0]
            for name in ("re_caption", "org_caption")
        },
        "histograms": {
            "org_clip_score": _histogram(con, "org_clip_score", scored_rows, 2.0),
            "re_clip_score": _histogram(con, "re_clip_score", scored_rows, 2.0),
            "org_length": _histogram(con, "org_length", kept_rows, 2.0),
            "re_length": _histogram(con, "re_length", kept_rows, 2.0),
        },
        "models": _models(con, config.scored),
    }
    card["concepts"] = concepts
    card["world_quality"] = _world_quality(con, config.world) if config.world else None
    card["seconds"] = round(time.perf_counter() - started, 2)
    write_data_card(card, staging)
    con.close()
    replace_folder(staging, final, keep=LOG_FILES)
    return card


def _concepts(con, config: CurateConfig, progress: bool) -> dict | None:
    """Count the metadata entries the rows every filter kept mention and, with `balance`, drop rows by MetaCLIP's
    rule (reason "balance"); None without metadata. Two streaming passes: count, then decide."""
    import numpy as np

    from recap.curation.balance import (
        EntryMatcher,
        distribution,
        keep_probabilities,
        keeps,
        read_metadata,
        world_metadata,
    )

    if config.metadata is None and config.world is None:
        return None
    entries = read_metadata(config.metadata) if config.metadata else world_metadata(config.world)
    matcher, column = EntryMatcher(entries), config.balance_column
    rows = con.execute("SELECT count(*) FROM curated WHERE reason IS NULL").fetchall()[0][0]

    def stream(desc: str):
        query = con.sql(
            f"SELECT coalesce(uid, source_shard || '/' || key) AS id, source_shard, key, {column} AS text "
            "FROM curated WHERE reason IS NULL"
        )
        bar = progress_bar(total=rows, desc=desc, unit="row", disable=not progress)
        with query.to_arrow_reader(batch_size=65_536) as batches:
            for batch in batches:
                columns = [batch.column(name).to_pylist() for name in ("id", "source_shard", "key", "text")]
                yield from zip(*columns, strict=True)
                bar.update(batch.num_rows)
        bar.close()

    pool = np.zeros(len(entries), dtype=np.int64)
    for _, _, _, text in stream("concepts"):
        for entry in matcher(text):
            pool[entry] += 1
    tail_below = max(1, int(pool.max(initial=0)) // 20)
    card = {
        "column": column,
        "metadata": display_path(config.metadata) if config.metadata else f"the vocabulary of {config.world}",
        "entries": len(entries),
        "rows": rows,
        "pool": distribution(entries, pool, tail_below=tail_below),
        "balanced": None,
    }
    if config.balance is None:
        return card
    probabilities = keep_probabilities(pool, config.balance)
    kept = np.zeros(len(entries), dtype=np.int64)
    dropped: dict[str, list] = {"source_shard": [], "key": []}
    for row_id, shard, key, text in stream("balance"):
        matched = matcher(text)
        if keeps(row_id, matched, probabilities, config.balance_seed):
            kept[matched] += 1
        else:
            dropped["source_shard"].append(shard)
            dropped["key"].append(key)
    con.register(
        "balance_dropped", pa.table(dropped, schema=pa.schema([("source_shard", pa.string()), ("key", pa.string())]))
    )
    con.execute(
        "UPDATE curated SET reason = 'balance' FROM balance_dropped AS d "
        "WHERE curated.source_shard = d.source_shard AND curated.key = d.key AND curated.reason IS NULL"
    )
    con.unregister("balance_dropped")
    card["balanced"] = {
        "threshold": config.balance,
        "seed": config.balance_seed,
        "rows_dropped": len(dropped["key"]),
        "entries_capped": int((pool > config.balance).sum()),
        **distribution(entries, kept, tail_below=tail_below),
    }
    return card


def _models(con, scored: str) -> dict:
    """The captioners, prompts and CLIPs of the kept rows, with each prompt's full text from the run manifests
    (the scoring manifest names the caption folder, whose manifests hold the prompt)."""
    captioners = con.execute(
        "SELECT captioner_model, prompt_id, count(*) FROM curated WHERE reason IS NULL GROUP BY ALL ORDER BY 3 DESC"
    ).fetchall()
    clips = con.execute("SELECT DISTINCT clip_model FROM curated WHERE clip_model IS NOT NULL").fetchall()
    prompts: dict[str, str] = {}
    for manifest in sorted(Path(scored, "_manifests").glob("*.json")):
        captions = json.loads(manifest.read_text()).get("config", {}).get("captions")
        for caption_manifest in sorted(Path(captions or "/nonexistent", "_manifests").glob("*.json")):
            captioner = json.loads(caption_manifest.read_text()).get("captioner", {})
            if captioner.get("prompt_id") and captioner.get("prompt_text"):
                prompts[captioner["prompt_id"]] = captioner["prompt_text"]
    return {
        "captioners": [
            {"model": display_path(model), "prompt_id": prompt, "prompt_text": prompts.get(prompt), "rows": rows}
            for model, prompt, rows in captioners
        ],
        "clip": [_display_clip(row[0]) for row in clips],
    }


def _display_clip(clip_model: str) -> str:
    """A clip_model value ("FOLDER" or "NAME (CHECKPOINT)") with its paths as the card shows paths."""
    name, separator, pretrained = clip_model.partition(" (")
    if separator and pretrained.endswith(")"):
        return f"{display_path(name)} ({display_path(pretrained[:-1])})"
    return display_path(clip_model)


def _world_quality(con, world: str) -> dict:
    """Against the world's ground truth: caption quality of the kept rows' alt-text and recaption, and how well
    org_clip_score tells each scored row's alt-text kind (mean per kind; AUC of wrong against descriptive)."""
    from recap.caption_quality import world_scenes
    from recap.world.generate import SPLITS, truth_by_uid
    from recap.world.quality import CaptionScore, score_caption

    scenes = world_scenes(world)
    scores = {"org_caption": CaptionScore(), "re_caption": CaptionScore()}
    rows = con.execute("SELECT uid, org_caption, re_caption FROM curated WHERE reason IS NULL").fetchall()
    for uid, org, recaption in rows:
        scene = scenes.get(uid)
        if scene is None:
            continue
        scores["org_caption"] += score_caption(org, scene)
        scores["re_caption"] += score_caption(recaption, scene)
    kinds: dict[str, str] = {}
    for split in SPLITS:
        kinds.update(truth_by_uid(world, split, "alt_kind"))
    by_kind: dict[str, list[float]] = {}
    scored = con.execute("SELECT uid, org_clip_score FROM curated WHERE org_clip_score IS NOT NULL").fetchall()
    for uid, score in scored:
        if uid in kinds:
            by_kind.setdefault(str(kinds[uid]), []).append(score)
    return {
        "rows_in_world": sum(uid in scenes for uid, _, _ in rows),
        "caption_quality": {name: score.summary() for name, score in scores.items()},
        "org_clip_score_by_alt_kind": {
            kind: {"rows": len(values), "mean": round(sum(values) / len(values), 3)}
            for kind, values in sorted(by_kind.items())
        },
        "auc_wrong_vs_descriptive": auc(by_kind.get("descriptive", []), by_kind.get("wrong", [])),
    }


def auc(positives: list[float], negatives: list[float]) -> float | None:
    """The probability that a random positive scores above a random negative (ties count half): the ROC AUC."""
    if not positives or not negatives:
        return None
    import numpy as np

    _, inverse, counts = np.unique(np.concatenate([positives, negatives]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based ranks, ties sharing their mean rank
    wins = ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return round(float(wins / (len(positives) * len(negatives))), 4)
