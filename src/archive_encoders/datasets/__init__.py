"""Stage 3, datasets: document-level splits, TSDAE pairs, pseudo-query triplets with mined hard
negatives, the held-out query sets and a team's own judged sets."""

from archive_encoders.datasets.querysets import query_sets
from archive_encoders.datasets.splits import split_documents
from archive_encoders.datasets.triplets import mine_triplets
from archive_encoders.datasets.tsdae import tsdae_pairs
from archive_encoders.datasets.user_sets import import_user_set

__all__ = ["import_user_set", "mine_triplets", "query_sets", "split_documents", "tsdae_pairs"]
