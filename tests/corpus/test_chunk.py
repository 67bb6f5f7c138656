"""Chunking by tokens: limits, overlap, boundaries, offsets, stable ids, Parquet round trips."""

from __future__ import annotations

import re

import polars as pl
import pytest

from archive_encoders.corpus.chunk import TokenCounter, _is_sentence_start, chunk_documents, chunk_text

ENGLISH = [
    "The first lighthouses were simply fires of wood or coal burning in an iron basket on the top of a "
    "tower. Such a fire could be seen a few miles in clear weather. It consumed great quantities of fuel, "
    "and it was hidden by its own smoke when the wind blew towards the sea.",
    "The oil lamp with a circular wick gave a much brighter and steadier light. Several such wicks placed "
    "one within another made a single large flame. Colza oil was burnt at first, later paraffin.",
    "LIGHTHOUSES.",
    "To distinguish one light from another, the apparatus is made to revolve. The mariner sees a flash, "
    "a group of flashes, or a light which is eclipsed for a moment at regular periods. Every lighthouse on "
    "a coast has its own character, published in the lists of lights. The navigator who times the flashes "
    "with his watch knows at once which headland he is approaching. Mr. Stevenson and Dr. Hall wrote on "
    "it, e.g. in 1850. The keepers trim the lamps, clean the lenses and wind the clockwork.",
]
RUSSIAN = [
    "Волга берет начало на Валдайской возвышенности и течет сначала узким ручьем через болота и озера. "
    "Только после впадения Тверцы она становится судоходной. А. С. Пушкин писал о ней, т. е. о Волге, "
    "в 1833 г. немало. Ниже Ярославля она превращается в широкую реку!",
    "Главное дело на Волге — перевозка хлеба, соли, рыбы и леса. Прежде суда тянули вверх по реке "
    "бурлаки; теперь эту работу исполняют буксирные пароходы. Кто-нибудь видел ярмарку в Нижнем?",
]
TEXT = "\n\n".join(ENGLISH + RUSSIAN)


@pytest.fixture(scope="module")
def counter(minilm_path):
    return TokenCounter({"path": str(minilm_path)})


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path))


def tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_chunks(text, chunks, max_tokens, hf_tokenizer):
    """Invariants every chunking must hold; returns the chunk texts."""
    pieces = []
    covered = 0
    for start, end, n in chunks:
        piece = text[start:end]
        assert piece and piece == piece.strip()
        assert n == tokens(hf_tokenizer, piece) <= max_tokens  # the count is the tokenizer's, no specials
        assert not text[covered:start].strip(), "text between chunks was lost"
        covered = max(covered, end)
        pieces.append(piece)
    assert not text[covered:].strip()
    return pieces


def test_the_word_count_cache_matches_the_tokenizer(counter, hf_tokenizer):
    assert counter.additive
    counter.learn(TEXT.split())
    for word in set(TEXT.split()):
        assert counter.words[word] == tokens(hf_tokenizer, word)
    assert counter.count(TEXT) == tokens(hf_tokenizer, TEXT)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(24, 0), (40, 8), (64, 16), (128, 32), (2048, 32)])
def test_limits_offsets_and_coverage(counter, hf_tokenizer, max_tokens, overlap):
    chunks = chunk_text(TEXT, counter, max_tokens, overlap)
    check_chunks(TEXT, chunks, max_tokens, hf_tokenizer)
    if max_tokens == 2048:
        assert len(chunks) == 1 and chunks[0][:2] == (0, len(TEXT))


def test_paragraphs_that_fit_are_kept_whole(counter):
    paragraphs = {p for p in TEXT.split("\n\n") if counter.count(p) <= 64}
    pieces = [TEXT[s:e] for s, e, _ in chunk_text(TEXT, counter, 64, 0)]
    for paragraph in paragraphs:
        assert any(paragraph in piece for piece in pieces), paragraph


def test_chunks_start_at_paragraphs_or_sentences(counter):
    text = "\n\n".join(ENGLISH)  # sentences shorter than the limit (Russian in MiniLM's vocabulary is not)
    for start, _, _ in chunk_text(text, counter, 48, 0):
        assert start == 0 or text[start - 1] == "\n" or text[:start].rstrip()[-1] in ".!?", text[start:]


def test_overlap_is_the_tail_of_the_previous_chunk(counter):
    chunks = chunk_text(TEXT, counter, 40, 12)
    overlaps = 0
    for (_, e1, _), (s2, _, _) in zip(chunks, chunks[1:], strict=False):
        if s2 < e1:
            overlaps += 1
            assert counter.count(TEXT[s2:e1]) <= 12
            assert not TEXT[s2 - 1].isalnum()  # whole words
    assert overlaps >= len(chunks) // 2


def test_overlap_prefers_whole_sentences(counter):
    sentences = [f"Sentence number {i} is short." for i in range(40)]
    text = " ".join(sentences)
    chunks = chunk_text(text, counter, 32, 16)
    for (_, e1, _), (s2, _, _) in zip(chunks, chunks[1:], strict=False):
        assert s2 >= e1 or text[s2:].startswith("Sentence number")  # overlaps are whole sentences
    assert sum(s2 < e1 for (_, e1, _), (s2, _, _) in zip(chunks, chunks[1:], strict=False)) >= 5


def test_no_overlap_when_zero(counter):
    chunks = chunk_text(TEXT, counter, 40, 0)
    for (_, e1, _), (s2, _, _) in zip(chunks, chunks[1:], strict=False):
        assert s2 >= e1


def test_a_sentence_longer_than_the_limit_is_split(counter, hf_tokenizer):
    text = " ".join(f"word{i}" for i in range(300)) + "."
    chunks = chunk_text(text, counter, 32, 4)
    check_chunks(text, chunks, 32, hf_tokenizer)
    assert len(chunks) > 5


def test_a_word_longer_than_the_limit_is_split_at_tokens(counter, hf_tokenizer):
    text = "Before the debris. " + "x7q" * 200 + " and after it."
    chunks = chunk_text(text, counter, 16, 4)
    check_chunks(text, chunks, 16, hf_tokenizer)


def test_a_tokenizer_that_is_not_additive_still_gets_exact_counts(minilm_path, hf_tokenizer):
    slow = TokenCounter({"path": str(minilm_path)})
    slow.additive = False  # what a byte-level BPE tokenizer would get
    chunks = chunk_text(TEXT, slow, 40, 8)
    check_chunks(TEXT, chunks, 40, hf_tokenizer)


@pytest.mark.parametrize(
    "text",
    [
        "А. С. Пушкин родился в Москве. Он писал стихи. В 1833 г. он ездил на Волгу! Т. е. далеко.",
        "Mr. Stevenson and Dr. Hall wrote on it, e.g. in 1850. The keepers trim lamps. “Why?” he asked. "
        "He left... And then (at last.) It ended.",
        "Высочайше повелено: 1) из состоящих в службе... 2) иностранцев. Разрешено! Повелено? Да.",
    ],
)
def test_sentence_boundaries_agree_with_razdel(text):
    import razdel

    starts = {s.start for s in razdel.sentenize(text)}
    for match in re.finditer(r"([.!?…][\"'»”’)\]]*)\s+", text):
        at = match.end()
        assert _is_sentence_start(text, match.end(1) - 1, at, 0) == (at in starts), text[at - 15 : at + 10]


@pytest.fixture(scope="module")
def documents_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("chunk") / "documents.parquet"
    pl.DataFrame(
        {
            "doc_id": ["b_russian", "a_english", "c_empty"],
            "text": ["\n\n".join(RUSSIAN), "\n\n".join(ENGLISH), ""],
            "language": ["ru", "en", "en"],
        }
    ).write_parquet(path)
    return path


def test_chunk_documents_table_ids_and_round_trips(documents_parquet, minilm_path, tmp_path):
    spec = {"path": str(minilm_path), "max_seq_length": 256}
    settings = {"max_tokens": 48, "overlap_tokens": 8}
    first, second = tmp_path / "one.parquet", tmp_path / "two.parquet"
    assert chunk_documents(documents_parquet, first, settings, spec) > 0
    chunk_documents(documents_parquet, second, settings, spec)

    frame = pl.read_parquet(first)
    assert frame.columns == [
        "chunk_id", "doc_id", "chunk_index", "text", "n_tokens", "char_start", "char_end", "language",
    ]  # fmt: skip
    assert frame.equals(pl.read_parquet(second))  # same input, same chunks and ids
    assert frame["chunk_id"].n_unique() == frame.height
    assert frame["doc_id"].to_list() == sorted(frame["doc_id"].to_list())
    assert frame["n_tokens"].max() <= 48
    docs = dict(pl.read_parquet(documents_parquet).select("doc_id", "text").iter_rows())
    for row in frame.iter_rows(named=True):
        assert docs[row["doc_id"]][row["char_start"] : row["char_end"]] == row["text"]
    assert frame.filter(pl.col("doc_id") == "a_english")["chunk_index"].to_list() == list(
        range(frame.filter(pl.col("doc_id") == "a_english").height)
    )

    import datasets
    import pyarrow.parquet as pq

    table = pq.read_table(first)
    assert table.num_rows == frame.height and table.column_names == frame.columns
    dataset = datasets.load_dataset("parquet", data_files=str(first), split="train")
    assert dataset.num_rows == frame.height and dataset[0]["chunk_id"] == frame["chunk_id"][0]
