"""Stage 6, evaluate: every variant and BM25 on the held-out sets, the hybrids and the paired comparison,
latency."""

from archive_encoders.evaluate.compare import compare
from archive_encoders.evaluate.dense import evaluate_model
from archive_encoders.evaluate.latency import measure as measure_latency
from archive_encoders.evaluate.lexical import evaluate_lexical

__all__ = ["compare", "evaluate_lexical", "evaluate_model", "measure_latency"]
