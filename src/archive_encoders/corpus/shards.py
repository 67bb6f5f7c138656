"""Shards: the corpus split into groups of items that are cleaned and chunked by jobs of their own.

A shard's membership must not move when the item set changes, or widening the archive query would
reprocess every shard. A fixed number of hash buckets fails that (new items land in every bucket), so the
assignment is a persisted ledger (`resources/corpus/shard_ledger.json`, kept beside the download cache
and like it surviving a deleted results/): an item keeps the shard it was first given, and new items, in
identifier order, fill the last shard up to `items_per_shard`, then new shards. An item that leaves the
item set keeps its place in the ledger (it comes back to the same shard), but leaves its shard's list.

`assign_shards` writes one item list per shard (`results/corpus/shard_items/{shard}.parquet`, the
columns of `documents.ITEM_LIST_SCHEMA`) and rewrites a list only when its rows change, so the jobs of an
untouched shard see an input older than their outputs and do not rerun. Changing `items_per_shard`
starts a new ledger: every shard is rebuilt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from archive_encoders.io import read_json, write_json, write_parquet

# The workflow imports this module to list the shards when it builds its DAG: polars (0.3 s) is
# imported only by the functions that use it.

log = logging.getLogger(__name__)

SHARD_DIGITS = 5  # shard names are zero-padded numbers: 00000, 00001, ...
MAX_SHARDS = 10**SHARD_DIGITS  # a longer name would escape the {shard} wildcard and the listing


def shard_name(index: int) -> str:
    if not 0 <= index < MAX_SHARDS:
        raise ValueError(
            f"shard {index}: shard names have {SHARD_DIGITS} digits (at most {MAX_SHARDS} shards)"
        )
    return f"{index:0{SHARD_DIGITS}d}"


def read_ledger(path: str | os.PathLike, items_per_shard: int) -> list[list[str]]:
    """The ledger's shards (lists of identifiers, by shard index); empty when there is none yet or it was
    made with another items_per_shard."""
    path = Path(path)
    if not path.exists():
        return []
    ledger = read_json(path)
    if ledger.get("items_per_shard") != items_per_shard:
        log.warning(
            "%s was made with items_per_shard %s, the config says %d: starting a new ledger (every shard "
            "is rebuilt)",
            path,
            ledger.get("items_per_shard"),
            items_per_shard,
        )
        return []
    return [list(members) for members in ledger["shards"]]


def extend_ledger(
    shards: list[list[str]], identifiers: Iterable[str], items_per_shard: int
) -> list[list[str]]:
    """`shards` with every identifier it lacks added: in identifier order, into the last shard while it
    has room, then into new shards. Existing members never move."""
    if items_per_shard < 1:
        raise ValueError(f"corpus.items_per_shard must be at least 1, not {items_per_shard}")
    shards = [list(members) for members in shards]
    known = {identifier for members in shards for identifier in members}
    new = sorted(set(identifiers) - known)
    for identifier in new:
        if not shards or len(shards[-1]) >= items_per_shard:
            shards.append([])
        shards[-1].append(identifier)
    if len(shards) > MAX_SHARDS:
        raise ValueError(
            f"corpus.items_per_shard: {len(known) + len(new)} items in shards of {items_per_shard} "
            f"need {len(shards)} shards, more than the {MAX_SHARDS} that {SHARD_DIGITS}-digit shard names "
            "allow; raise items_per_shard"
        )
    return shards


def assign_shards(
    item_list_path: str | os.PathLike,
    downloads: str | os.PathLike,
    shard_dir: str | os.PathLike,
    ledger_path: str | os.PathLike,
    items_per_shard: int,
) -> dict[str, int]:
    """items.parquet + downloads.parquet -> `shard_dir/{shard}.parquet` for every shard that holds a
    current item, each written only when its rows changed; lists of shards left empty are removed.
    Every current item is in exactly one list. Returns {shard: items}."""
    import polars as pl

    from archive_encoders.corpus.documents import item_list

    items = item_list(item_list_path, downloads)
    old = read_ledger(ledger_path, items_per_shard)
    shards = extend_ledger(old, items["identifier"], items_per_shard)
    shard_of = {
        identifier: shard_name(index) for index, members in enumerate(shards) for identifier in members
    }
    items = items.with_columns(shard=pl.col("identifier").replace_strict(shard_of, return_dtype=pl.String))
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    rewritten = 0
    for (name,), rows in items.sort("identifier").group_by("shard", maintain_order=True):
        rows = rows.drop("shard")
        counts[name] = rows.height
        rewritten += _write_if_changed(rows, shard_dir / f"{name}.parquet")
    for stale in sorted(set(_listed(shard_dir)) - set(counts)):
        log.info("shard %s holds no current item: its list is removed", stale)
        (shard_dir / f"{stale}.parquet").unlink()
    if shards != old:
        write_json(ledger_path, {"items_per_shard": items_per_shard, "shards": shards})
    log.info(
        "%d items in %d shards (items_per_shard %d); %d shard list(s) new or changed",
        items.height,
        len(counts),
        items_per_shard,
        rewritten,
    )
    return dict(sorted(counts.items()))


def _listed(shard_dir: Path) -> list[str]:
    """The shard names of the lists in `shard_dir` (temporary files of a killed write aside)."""
    return [p.stem for p in shard_dir.glob("*.parquet") if p.stem.isdigit() and len(p.stem) == SHARD_DIGITS]


def _write_if_changed(rows, path: Path) -> bool:
    """Write the polars frame `rows` to `path` unless the file holds exactly these rows already."""
    import polars as pl

    if path.exists():
        try:
            if pl.read_parquet(path).equals(rows):
                return False
        except Exception as err:  # unreadable (say, not Parquet): rewrite it
            log.warning("%s is unreadable (%s): rewriting it", path, err)
    write_parquet(rows, path)
    return True


def shard_names(shard_dir: str | os.PathLike) -> list[str]:
    """The shards `assign_shards` listed in `shard_dir`, in order."""
    return sorted(_listed(Path(shard_dir)))
