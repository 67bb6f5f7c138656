"""Stage 2, corpus: shards of items, OCR clean-up, language and quality filters, duplicate scans, token
chunks, and the manifest every later stage reads the corpus through (`manifest.scan_chunks`, ...)."""

from archive_encoders.corpus.chunk import chunk_documents
from archive_encoders.corpus.dedupe import dedupe_corpus
from archive_encoders.corpus.documents import clean_shard
from archive_encoders.corpus.manifest import SHARD_FILES, write_manifest
from archive_encoders.corpus.shards import assign_shards

__all__ = [
    "SHARD_FILES",
    "assign_shards",
    "chunk_documents",
    "clean_shard",
    "dedupe_corpus",
    "write_manifest",
]
