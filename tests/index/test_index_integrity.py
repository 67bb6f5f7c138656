"""A damaged or inconsistent index folder: opening it is a BrokenIndex naming the file, and the search and
serve commands turn every such case (and a query that is not UTF-8) into one line on stderr and exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from support.index_helpers import build_topic_index, encode_for_index
from support.serving_helpers import SRC, TOPICS, run_without_torch, static_tiny

from archive_encoders.corpus.manifest import manifest_of_tables
from archive_encoders.index.build import build_index
from archive_encoders.index.search import BrokenIndex, SearchIndex
from archive_encoders.io import read_json, write_json

CLI = ["-m", "archive_encoders.index.cli"]


@pytest.fixture(scope="module")
def built(tiny_model, tmp_path_factory):
    folder, _, rows = build_topic_index(
        tmp_path_factory.mktemp("integrity"), "static", static_tiny(tiny_model)
    )
    return folder, rows


def truncate(path, share=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


def junk(path):
    path.write_bytes(b"not an index file\n" * 40)


def edit_manifest(change):
    def apply(path):
        manifest = read_json(path)
        change(manifest)
        write_json(path, manifest)

    return apply


def other_dimension_graph(path):
    from usearch.index import Index

    count = read_json(path.with_name("index.json"))["count"]
    graph = Index(ndim=8, metric="cos", dtype="f32")
    graph.add(
        np.arange(count, dtype=np.uint64), np.random.default_rng(0).random((count, 8), dtype=np.float32)
    )
    path.unlink()
    graph.save(str(path))


def reordered_chunks(path):
    frame = pl.read_parquet(path)
    frame.reverse().write_parquet(path)


def one_chunk_short(path):
    pl.read_parquet(path).head(-1).write_parquet(path)


# (file, how it is damaged, words the one-line error must hold besides the file's path)
DAMAGE = {
    "truncated-vectors": ("vectors.usearch", truncate, "cannot be read"),
    "junk-vectors": ("vectors.usearch", junk, "cannot be read"),
    "empty-vectors": ("vectors.usearch", lambda p: p.write_bytes(b""), "cannot be read"),
    "graph-of-other-dimension": (
        "vectors.usearch",
        other_dimension_graph,
        "8-d vectors, but index.json says 16-d",
    ),
    "truncated-manifest": ("index.json", truncate, "not readable JSON"),
    "manifest-not-an-object": ("index.json", lambda p: p.write_text("[1, 2]"), "not a JSON object"),
    "manifest-not-utf8": ("index.json", lambda p: p.write_bytes(b'{"format": "\xff"}'), "not readable JSON"),
    "manifest-without-dimension": (
        "index.json",
        edit_manifest(lambda m: m.pop("dimension")),
        "key 'dimension' is missing",
    ),
    "manifest-count-as-text": (
        "index.json",
        edit_manifest(lambda m: m.update(count="24")),
        "key 'count' is str",
    ),
    "manifest-without-ids-hash": (
        "index.json",
        edit_manifest(lambda m: m["corpus"].pop("chunk_ids_sha256")),
        "chunk_ids_sha256",
    ),
    "corrupt-chunks": ("chunks.parquet", junk, "cannot be read"),
    "truncated-chunks": ("chunks.parquet", truncate, "cannot be read"),
    "chunks-reordered": ("chunks.parquet", reordered_chunks, "chunk ids are not the ones"),
    "chunks-one-short": ("chunks.parquet", one_chunk_short, "23 rows, but index.json says 24"),
}


def damaged_copy(built, tmp_path, case):
    folder = tmp_path / "index"
    shutil.copytree(built[0], folder)
    name, damage, _ = DAMAGE[case]
    damage(folder / name)
    return folder, folder / name


@pytest.mark.parametrize("case", list(DAMAGE))
def test_opening_a_damaged_index_names_the_file(built, tmp_path, case):
    folder, path = damaged_copy(built, tmp_path, case)
    with pytest.raises(BrokenIndex) as raised:
        SearchIndex(folder, threads=1)
    assert str(path) in str(raised.value) and DAMAGE[case][2] in str(raised.value)


# every damage is opened in-process above; here each command once per file it reads first (subprocesses)
@pytest.mark.parametrize(
    ("case", "command"),
    [
        ("truncated-vectors", "search"),
        ("manifest-without-dimension", "search"),
        ("corrupt-chunks", "search"),
        ("junk-vectors", "serve"),
    ],
)
def test_commands_refuse_a_damaged_index_in_one_line(built, tmp_path, case, command):
    folder, path = damaged_copy(built, tmp_path, case)
    args = [*CLI, command, "--index", str(folder)]
    if command == "search":
        args.append("river ice")
    else:
        args += ["--port", "1"]  # never reached: the index is refused before the server starts
    result = run_without_torch("", tmp_path, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"archive-encoders {command}: {path}")
    assert DAMAGE[case][2] in lines[0] and "Traceback" not in result.stderr


def test_search_refuses_a_query_that_is_not_utf8(built, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for as_json in ([], ["--json"]):
        args = [sys.executable, *CLI, "search", "--index", str(built[0]), *as_json, b"river \xff\xfe ice"]
        result = subprocess.run(args, capture_output=True, env=env, timeout=180)
        stderr = result.stderr.decode()
        assert result.returncode == 2, stderr
        assert stderr.count("\n") == 1 and "not valid UTF-8" in stderr and "\\xff\\xfe" in stderr
        if as_json:
            assert "not valid UTF-8" in json.loads(result.stdout)["error"]


def test_an_open_index_keeps_its_own_rows_when_the_folder_is_rebuilt(built, tmp_path):
    folder = tmp_path / "index"
    shutil.copytree(built[0], folder)
    index = SearchIndex(folder, threads=1)
    # rebuild the same folder from the corpus with its documents in the opposite order
    rows = built[1]
    flipped = {f"doc{t}": f"doc{3 - t}" for t in range(4)}
    chunks = pl.DataFrame(
        {
            "chunk_id": [f"c{3 - int(r[0][1])}{r[0][2:]}" for r in rows],
            "doc_id": [flipped[r[1]] for r in rows],
            "text": [r[2] for r in rows],
        }
    )
    chunks.write_parquet(tmp_path / "chunks.parquet")
    pl.DataFrame({"doc_id": [f"doc{t}" for t in range(4)], "title": ["x"] * 4}).write_parquet(
        tmp_path / "documents.parquet"
    )
    manifest_of_tables(tmp_path / "corpus.json", tmp_path / "documents.parquet", tmp_path / "chunks.parquet")
    recommendation = built[0].parent / "recommendation.json"
    build_index(
        recommendation,
        tmp_path / "corpus.json",
        encode_for_index(recommendation, tmp_path / "corpus.json", tmp_path / "embeddings"),
        folder,
        tmp_path / "report.json",
        {"dtype": "f32", "recall_queries": 4, "batch_size": 8, "snippet_chars": 400},
        threads=1,
    )
    source = rows[9]  # second topic
    hits = index.search(" ".join(source[2].split()[:8]), 3, retriever="dense")
    topic = set(TOPICS[1].split())
    for hit in hits:  # the old vectors' rows, not the rebuilt folder's
        assert set(hit.snippet.replace(".", "").split()) <= topic and hit.doc_id == "doc1"
