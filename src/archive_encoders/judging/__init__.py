"""Stage 7, judging: a team's queries pooled from every retriever (TREC's method), judged by people on a
page, and exported as a graded set the next verdict rests on."""

from archive_encoders.judging.pooling import build_pool

__all__ = ["build_pool"]
