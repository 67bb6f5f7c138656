"""The index's vector storage: memory estimates against usearch's real builds, the budget's choice of
vector type, b1 packing with int8 rescoring (recall, scores, files), and the one search both build and
serving call."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from archive_encoders.index.build import exact_top_k
from archive_encoders.index.storage import (
    RESCORE_SCALES,
    RESCORE_VECTORS,
    RescoreStore,
    RescoreWriter,
    bytes_per_vector,
    choose_dtype,
    estimated_disk_bytes,
    estimated_ram_bytes,
    graph_query,
    graph_vectors,
    new_graph,
    search_graph,
)

SRC = Path(__file__).resolve().parents[2] / "src"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(count: int, queries: int, dimension: int = 384, seed: int = 0):
    """(vectors, queries): unit vectors in clusters of sub-clusters of ~10, so a query's 10 nearest are
    mostly its sub-cluster and the rest its cluster (the benchmark's distribution, smaller)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((round(math.sqrt(count)), dimension)))
    subs = centres[rng.integers(0, len(centres), count // 10)]
    subs = subs + 1.5 * rng.standard_normal(subs.shape) / math.sqrt(dimension)

    def draw(n: int) -> np.ndarray:
        picked = subs[rng.integers(0, len(subs), n)]
        return unit(picked + rng.standard_normal(picked.shape) / math.sqrt(dimension))

    return draw(count), draw(queries)


def recall_at_10(found: list[np.ndarray], exact: np.ndarray) -> float:
    shared = [len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact, strict=True)]
    return float(np.mean(shared)) / 10


# --- sizes and the budget ---


def test_bytes_per_vector_by_hand():
    assert [bytes_per_vector(d, 384) for d in ("f32", "f16", "i8", "b1")] == [1536, 768, 384, 48]
    assert bytes_per_vector("b1", 385) == 49  # a partly used last byte is still a byte
    with pytest.raises(ValueError, match="index.dtype 'f64'"):
        bytes_per_vector("f64", 384)


def per_vector_by_hand(vector_bytes: int) -> float:
    """Connectivity 32: a node of 10 + 4 + 64 x 4 = 270 B rounded to 320 on level 0, + 132 per level
    above (402 -> 448, 534 -> 576, 666 -> 704, 798 -> 832), reached with probability 32^-level; + 27 B
    of lookups."""
    node = sum(size * (31 / 32) * 32.0**-level for level, size in enumerate((320, 448, 576, 704, 832)))
    return vector_bytes + node + 27


def test_the_estimate_by_hand_at_a_million():
    slots = 2**20  # capacity: the next power of two
    for dtype, vector_bytes in (("f32", 1536), ("i8", 384), ("b1", 48)):
        expected = 1_000_000 * per_vector_by_hand(vector_bytes) + 41 * slots
        assert estimated_ram_bytes(1_000_000, 384, dtype, 32) == pytest.approx(expected, rel=1e-6)


MEASURE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import usearch.index  # loaded before the baseline: the library is not the graph
    from archive_encoders.index import storage
    from archive_encoders.system import current_rss_mb

    dtype, connectivity, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    vectors = np.load(path)  # one allocation, kept: nothing freed for the graph to reuse unseen
    before = current_rss_mb()
    graph = storage.new_graph(vectors.shape[1] * (8 if dtype == "b1" else 1), dtype, connectivity, 8, 8)
    for start in range(0, len(vectors), 8192):
        graph.add(np.arange(start, min(start + 8192, len(vectors))), vectors[start : start + 8192], threads=2)
    print(json.dumps({"rss_bytes": (current_rss_mb() - before) * 2**20, "memory_usage": graph.memory_usage}))
    """
)


@pytest.mark.parametrize(("dtype", "connectivity"), [("i8", 32), ("b1", 16)])
def test_the_ram_estimate_matches_what_a_fresh_build_holds(tmp_path, dtype, connectivity):
    count = 20_000
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", graph_vectors(rng.standard_normal((count, 384), dtype=np.float32), dtype))
    script = tmp_path / "measure.py"
    script.write_text(MEASURE)
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script), dtype, str(connectivity), str(tmp_path / "v.npy")],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    measured = json.loads(out.stdout)
    estimate = estimated_ram_bytes(count, 384, dtype, connectivity)
    # resident memory grown by the build, in a process that allocated and freed nothing before it
    assert measured["rss_bytes"] == pytest.approx(estimate, rel=0.15)
    # usearch's memory_usage counts whole reserved arenas: never below what is resident
    assert measured["memory_usage"] >= 0.85 * estimate
    if dtype == "i8":  # 20 000 i8 vectors fill its arenas: there the two agree
        assert measured["memory_usage"] == pytest.approx(estimate, rel=0.15)


def test_nodes_on_disk_are_the_unrounded_nodes_usearch_reports(tmp_path):
    vectors, _ = clustered(4000, 0)
    for connectivity in (16, 32):
        graph = new_graph(384, "i8", connectivity, 16, 16)
        graph.add(np.arange(len(vectors)), graph_vectors(vectors, "i8"))
        # levels are random (probability connectivity^-level): the mean node is within 1 %
        node = 14 + 8 * connectivity + (4 + 4 * connectivity) / (connectivity - 1)
        assert graph.stats.allocated_bytes / len(vectors) == pytest.approx(node, rel=0.01)
        graph.save(str(tmp_path / "g.usearch"))
        on_disk = (tmp_path / "g.usearch").stat().st_size
        assert on_disk == pytest.approx(estimated_disk_bytes(len(vectors), 384, "i8", connectivity), rel=0.02)


def test_auto_picks_the_most_precise_type_that_fits_the_budget():
    gib = {d: 1_000_000 * per_vector_by_hand(b) / 2**30 + 41 * 2**20 / 2**30 for d, b in
           (("f32", 1536), ("i8", 384), ("b1", 48))}  # fmt: skip
    assert (round(gib["f32"], 3), round(gib["i8"], 3), round(gib["b1"], 3)) == (1.798, 0.725, 0.412)
    pick = {budget: choose_dtype(1_000_000, 384, 32, budget) for budget in (2.0, 1.798, 1.79, 0.8, 0.5)}
    assert pick == {2.0: "f32", 1.798: "f32", 1.79: "i8", 0.8: "i8", 0.5: "b1"}
    assert choose_dtype(1_000_000, 384, 32, None) == "i8"  # no budget: the schema's default
    assert choose_dtype(1_000_000, 384, 32, None, "f16") == "f16"


def test_a_budget_too_small_is_refused_naming_the_key_and_the_sizes():
    with pytest.raises(ValueError, match=r"index.memory_budget_gb is 0.3 GiB.*b1 needs ~0.41 GiB") as err:
        choose_dtype(1_000_000, 384, 32, 0.3)
    assert "f32 1.80, i8 0.72, b1 0.41" in str(err.value)
    with pytest.raises(ValueError, match=r"index.memory_budget_gb is 1 GiB, but index.dtype f32 needs ~1.80"):
        choose_dtype(1_000_000, 384, 32, 1.0, "f32")
    assert choose_dtype(1_000_000, 384, 32, 1.0, "i8") == "i8"
    for bad in (0, -1.0, "8", True):
        with pytest.raises(ValueError, match="index.memory_budget_gb"):
            choose_dtype(1000, 384, 32, bad)
    with pytest.raises(ValueError, match="index.dtype 'int8'"):
        choose_dtype(1000, 384, 32, None, "int8")


# --- what the graph is fed ---


def test_b1_packs_the_signs_by_hand():
    vector = np.array([[0.3, -0.1, 0.0, 0.2, -0.5, 0.1, 0.1, -0.2, 0.4]], dtype=np.float32)
    # bits 1 0 0 1 0 1 1 0 | 1 (zero is not positive), the last byte padded with zeros
    assert graph_vectors(vector, "b1").tolist() == [[0b10010110, 0b10000000]]
    assert graph_query(vector[0], "b1").tolist() == [150, 128]


def test_i8_scales_each_vector_to_its_largest_component_by_hand():
    vector = np.array([[0.5, -0.25, 0.1, 0.0]], dtype=np.float32)
    # 0.5 -> 127; -0.25 -> -63.5 -> -64 (to even); 0.1 -> 25.4 -> 25
    assert graph_vectors(vector, "i8").tolist() == [[127, -64, 25, 0]]
    assert graph_vectors(np.zeros((1, 4), np.float32), "i8").tolist() == [[0, 0, 0, 0]]
    with pytest.raises(ValueError, match="NaN or infinity"):
        graph_vectors(np.array([[np.nan, 1.0]], dtype=np.float32), "f32")


def test_b1_graph_measures_hamming_distance():
    rng = np.random.default_rng(1)
    bits = graph_vectors(rng.standard_normal((50, 64)).astype(np.float32), "b1")
    graph = new_graph(64, "b1", 16, 64, 64)
    graph.add(np.arange(50), bits)
    matches = graph.search(bits[0], 50, exact=True)
    by_hand = [int(np.unpackbits(bits[0] ^ bits[key]).sum()) for key in matches.keys]
    assert np.asarray(matches.distances).tolist() == by_hand
    assert by_hand[0] == 0 and by_hand == sorted(by_hand)


# --- search ---


def test_float_graph_scores_are_cosines_best_first():
    vectors, queries = clustered(300, 5, dimension=32)
    graph = new_graph(32, "f32", 16, 64, 300)
    graph.add(np.arange(len(vectors)), graph_vectors(vectors, "f32"))
    found = []
    for query in queries:
        keys, scores = search_graph(graph, query, 10, "f32")
        np.testing.assert_allclose(scores, vectors[keys] @ query, atol=1e-5)
        assert scores.tolist() == sorted(scores.tolist(), reverse=True)
        found.append(keys)
        exact_keys, _ = search_graph(graph, query, 10, "f32", exact=True)
        assert exact_keys.tolist() == exact_top_k(query[None], vectors, 10)[0].tolist()
    assert recall_at_10(found, exact_top_k(queries, vectors, 10)) >= 0.9  # HNSW: near, not always exact
    with pytest.raises(ValueError, match="query has 31 dimensions, the graph 32"):
        search_graph(graph, queries[0][:31], 10, "f32")


def test_i8_graph_scores_are_cosines_of_the_int8_vectors():
    vectors, queries = clustered(300, 3, dimension=32)
    graph = new_graph(32, "i8", 16, 64, 300)
    graph.add(np.arange(len(vectors)), graph_vectors(vectors, "i8"))
    keys, scores = search_graph(graph, queries[0], 10, "i8")
    stored = graph_vectors(vectors[keys], "i8").astype(np.float64)
    query = graph_query(queries[0], "i8").astype(np.float64)
    by_hand = stored @ query / np.linalg.norm(stored, axis=1) / np.linalg.norm(query)
    np.testing.assert_allclose(scores, by_hand, atol=1e-5)


def build_b1(folder: Path, vectors: np.ndarray, batch: int = 700):
    graph = new_graph(vectors.shape[1], "b1", 32, 128, 256)
    with RescoreWriter(folder) as writer:
        for start in range(0, len(vectors), batch):
            part = vectors[start : start + batch]
            graph.add(np.arange(start, start + len(part)), graph_vectors(part, "b1"))
            writer.add(part)
    return graph, RescoreStore(folder)


def test_b1_with_rescoring_finds_the_exact_float_neighbours(tmp_path):
    vectors, queries = clustered(3000, 40)
    graph, store = build_b1(tmp_path, vectors)
    exact = exact_top_k(queries, vectors, 10)
    found = [search_graph(graph, q, 10, "b1", store)[0] for q in queries]
    assert recall_at_10(found, exact) > 0.9
    unrescored = [np.asarray(graph.search(graph_query(q, "b1"), 10).keys) for q in queries]
    assert recall_at_10(unrescored, exact) < recall_at_10(found, exact)  # rescoring is what earns it
    with pytest.raises(ValueError, match="needs its rescoring store"):
        search_graph(graph, queries[0], 10, "b1")


def test_rescored_scores_are_cosines_of_the_dequantized_vectors_by_hand(tmp_path):
    stored = np.array([[0.5, -0.25, 0.1, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.2, 0.0, 0.0]], np.float32)
    with RescoreWriter(tmp_path) as writer:
        writer.add(stored)
    store = RescoreStore(tmp_path)
    # row 0: int8 (127, -64, 25, 0) x 0.5/127; cosine with (1, 0, 0, 0) = 127 / sqrt(127² + 64² + 25²)
    assert store.vectors[0].tolist() == [127, -64, 25, 0]
    assert store.scales.tolist() == pytest.approx([0.5 / 127, 0.0, 0.2 / 127])
    keys, scores = store.rescore(np.array([1.0, 0.0, 0.0, 0.0]), [2, 1, 0], 3)
    # row 0 first; rows 1 (zero vector) and 2 (orthogonal) tie at 0: by key
    assert keys.tolist() == [0, 1, 2]
    assert scores.tolist() == pytest.approx([127 / math.sqrt(127**2 + 64**2 + 25**2), 0.0, 0.0], abs=1e-6)
    keys, scores = store.rescore(np.array([0.0, -3.0, 0.0, 0.0]), [0, 2], 1)  # the query's norm cancels
    assert keys.tolist() == [0] and scores.tolist() == pytest.approx([64 / math.sqrt(20850)], abs=1e-6)
    with pytest.raises(ValueError, match="outside 0..2"):
        store.rescore(np.ones(4), [3], 1)


def test_rescore_files_round_trip(tmp_path):
    vectors, _ = clustered(1000, 0, dimension=48)
    with RescoreWriter(tmp_path) as writer:
        for part in (vectors[:1], vectors[1:600], vectors[600:]):
            writer.add(part)
    assert sorted(p.name for p in tmp_path.iterdir()) == [RESCORE_VECTORS, RESCORE_SCALES]
    values, scales = np.load(tmp_path / RESCORE_VECTORS), np.load(tmp_path / RESCORE_SCALES)
    assert (values.dtype, values.shape) == (np.int8, (1000, 48))
    assert (scales.dtype, scales.shape) == (np.float32, (1000,))
    assert np.abs(values).max(axis=1).tolist() == [127] * 1000
    # each component within half a step of its vector's scale
    assert np.all(np.abs(values * scales[:, None] - vectors) <= scales[:, None] / 2 + 1e-7)
    store = RescoreStore(tmp_path)
    assert isinstance(store.vectors, np.memmap) and (store.count, store.dimension) == (1000, 48)
    np.testing.assert_array_equal(store.vectors, values)


def test_a_failed_build_leaves_no_rescore_files(tmp_path):
    with pytest.raises(RuntimeError, match="encoder died"), RescoreWriter(tmp_path) as writer:
        writer.add(np.ones((3, 8), np.float32))
        raise RuntimeError("encoder died")
    assert list(tmp_path.iterdir()) == []
    refused = r"rescore_int8.npy: a batch of shape \(2, 7\), not \(rows, 8\)"
    with pytest.raises(ValueError, match=refused), RescoreWriter(tmp_path) as writer:
        writer.add(np.ones((3, 8), np.float32))
        writer.add(np.ones((2, 7), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_disagreeing_rescore_files_are_refused_naming_the_file(tmp_path):
    with RescoreWriter(tmp_path) as writer:
        writer.add(np.ones((10, 8), np.float32))
    np.save(tmp_path / RESCORE_SCALES, np.ones(9, np.float32))
    with pytest.raises(ValueError, match=r"rescore_scale.npy: 9 scales, but rescore_int8.npy holds 10 "):
        RescoreStore(tmp_path)
    np.save(tmp_path / RESCORE_SCALES, np.ones(10, np.float64))
    with pytest.raises(ValueError, match=r"rescore_scale.npy: float64 of shape \(10,\), expected float32"):
        RescoreStore(tmp_path)
    (tmp_path / RESCORE_VECTORS).write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"rescore_int8.npy: not a readable .npy file"):
        RescoreStore(tmp_path)
    (tmp_path / RESCORE_VECTORS).unlink()
    with pytest.raises(ValueError, match=r"rescore_int8.npy: missing"):
        RescoreStore(tmp_path)
