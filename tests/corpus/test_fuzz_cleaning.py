"""Property tests of the OCR cleaner and the chunker on hostile text: random Unicode with combining marks,
control characters, surrogate-free astral letters, page breaks, huge and empty strings. The cleaner always
returns text; the chunker, on the cleaned text, always returns chunks that cover it within the token limits,
or the one documented ValueError (overlap not smaller than the limit)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive_encoders.corpus.chunk import TokenCounter, chunk_text
from archive_encoders.corpus.clean import CleanResult, clean_text

# letters of the scripts the archive holds, the marks OCR and old spelling bring, and layout characters
PIECES = st.sampled_from(
    [
        "a", "Z", "ё", "Ѣ", "і", "ъ", "ß", "ﬁ", "\u0301", "\u0306", "\u0308", "\u00ad", "-", "¬", "—",
        " ", "\t", "\n", "\n\n", "\n\n\n", "\f", "\r\n", "\x00", "\x07", "\u200b", "\ufeff", "\u2028",
        "12", "iv", ".", "!?", "…", "«", "»", "Digitized by the Internet Archive", "books.google.com",
        "Глава I.", "СТРАНИЦА 14", "🙂", "𝔄", "\U000e0001",
    ]
)  # fmt: skip
TEXTS = st.one_of(
    st.text(max_size=400),
    st.lists(PIECES, max_size=200).map("".join),
    st.builds(
        lambda p, n: p * n, st.lists(PIECES, min_size=1, max_size=6).map("".join), st.integers(0, 3000)
    ),
)


@settings(deadline=None)  # a 500-fold repeat of a long piece takes a while on a busy machine
@given(raw=TEXTS, prereform=st.booleans())
def test_the_cleaner_always_returns_text(raw, prereform):
    result = clean_text(raw, prereform_spelling=prereform)
    assert isinstance(result, CleanResult)
    assert isinstance(result.text, str) and isinstance(result.text_original, str)
    assert all(isinstance(n, int) and n >= 0 for n in result.counts.values())
    assert "\f" not in result.text


@pytest.fixture(scope="module")
def counter(minilm_path):
    return TokenCounter({"path": str(minilm_path)})


@settings(max_examples=settings().max_examples // 2, deadline=None)  # tokenizes thousands of words
@given(raw=TEXTS, max_tokens=st.integers(4, 96), overlap=st.integers(0, 100))
def test_chunks_cover_the_text_within_the_limits(counter, raw, max_tokens, overlap):
    # the chunker reads cleaned text, as the corpus stage feeds it: on raw text a control character that
    # Python splits words on (\x1f) and the tokenizer drops made the counted tokens differ by one
    text = clean_text(raw).text
    if overlap >= max_tokens:
        with pytest.raises(ValueError, match="overlap_tokens must be smaller"):
            chunk_text(text, counter, max_tokens, overlap)
        return
    chunks = chunk_text(text, counter, max_tokens, overlap)
    covered = 0
    for start, end, n in chunks:
        assert 0 <= start < end <= len(text)
        piece = text[start:end]
        assert piece.strip() and n == counter.exact(piece) <= max_tokens
        assert not text[covered:start].strip(), "text between chunks was lost"
        covered = max(covered, end)
    assert not text[covered:].strip()
