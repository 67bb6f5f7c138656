"""A small judging pool and its corpus: three queries, three systems, depth 3, overlapping results."""

from __future__ import annotations

from pathlib import Path

import polars as pl

SYSTEMS = ("bm25", "minilm/lora/onnx-int8/dense", "minilm/lora/onnx-int8/hybrid-weighted")
QUERIES = {"q1": "пожар в Иркутске 1879", "q2": "Lake Baikal fisheries", "q3": "letters <about> & fire"}
# query -> system -> ranked corpus ids
RANKINGS = {
    "q1": {SYSTEMS[0]: ["p1", "p2", "p3"], SYSTEMS[1]: ["p2", "p4", "p1"], SYSTEMS[2]: ["p2", "p1", "p5"]},
    "q2": {SYSTEMS[0]: ["p6", "p7", "p8"], SYSTEMS[1]: ["p6", "p7", "p8"], SYSTEMS[2]: ["p7", "p6", "p8"]},
    "q3": {SYSTEMS[0]: ["p3", "p9", "p1"], SYSTEMS[1]: ["p9", "p3"], SYSTEMS[2]: ["p3", "p9", "p5"]},
}
PASSAGES = {
    "p1": ("Иркутский пожар", "Пожар 1879 года уничтожил большую часть Иркутска."),
    "p2": ("Хроника", "24 июня 1879 года в Иркутске начался пожар."),
    "p3": ("Письма", "<b>Letters</b> & notes <script>alert('x')</script> about the fire."),
    "p4": ("Отчёт", "Отчёт губернатора о восстановлении города."),
    "p5": ("Разное", "Цены на хлеб в Сибири."),
    "p6": ("Baikal", "Omul fishing on Lake Baikal in the 1890s."),
    "p7": ("Fisheries", "The Baikal fisheries and their seasons."),
    "p8": ("Travel", "A journey along the Angara river."),
    "p9": ("Correspondence", "A letter describing the great fire."),
    "p10": ("Unpooled", "A passage no system retrieved."),
}


def doc_of(corpus_id: str) -> str:
    return f"doc-{corpus_id}"


def pool_frame() -> pl.DataFrame:
    rows = []
    for qid, systems in RANKINGS.items():
        for system, ranked in systems.items():
            for rank, cid in enumerate(ranked, start=1):
                title, text = PASSAGES[cid]
                rows.append((qid, QUERIES[qid], system, rank, cid, doc_of(cid), title, text))
    schema = ["query_id", "query", "system", "rank", "corpus_id", "doc_id", "title", "text"]
    return pl.DataFrame(rows, schema=schema, orient="row")


def write_pool(folder: Path) -> tuple[Path, Path]:
    """pool.parquet and corpus.parquet (columns of results/datasets/querysets/test/corpus.parquet)."""
    folder.mkdir(parents=True, exist_ok=True)
    pool_frame().write_parquet(folder / "pool.parquet")
    corpus = pl.DataFrame(
        [(cid, doc_of(cid), f"cluster-{cid}", title, text) for cid, (title, text) in PASSAGES.items()],
        schema=["corpus_id", "doc_id", "cluster_id", "title", "text"],
        orient="row",
    )
    corpus.write_parquet(folder / "corpus.parquet")
    return folder / "pool.parquet", folder / "corpus.parquet"


# judgments of the pool: (query, passage, annotator, grade)
JUDGED = [
    ("q1", "p1", "ann", 2),
    ("q1", "p2", "ann", 1),
    ("q1", "p2", "bob", 2),  # 1, 2 -> mean 1.5 -> 2
    ("q1", "p4", "ann", 0),
    ("q1", "p4", "bob", 1),  # 0, 1 -> 0.5 -> 1
    ("q1", "p3", "ann", 0),
    ("q1", "p3", "bob", 2),  # 0, 2 -> 1
    ("q1", "p5", "ann", 0),
    ("q1", "p5", "bob", 0),
    ("q1", "p5", "cyd", 1),  # 0, 0, 1 -> 0.33 -> 0
    ("q2", "p6", "ann", 1),
    ("q2", "p7", "ann", 2),
    ("q2", "p7", "bob", 2),
    ("q3", "p9", "bob", 0),  # q3: nothing relevant, so an evaluation set has no use for it
]
