"""An encoder that encodes each distinct (prefix, text) once: evaluation meets the same text many times."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archive_encoders.encoders.loader import Encoder, PrefixedEncoder


class MemoEncoder(PrefixedEncoder):
    """An encoder that encodes each distinct (prefix, text) once and answers repeats from memory.

    An evaluation meets the same text many times: a passage in the val and the test corpus (distractors
    are drawn from earlier splits), a set's override that equals another set's, keyword and spelling
    queries made from one passage, probe and compression passages that are also corpus passages. The
    embeddings are those of the wrapped encoder (a text's embedding does not depend on its batch, up to
    float rounding of the padding). Lives as long as one variant's evaluation."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.query_prefix = encoder.query_prefix
        self.passage_prefix = encoder.passage_prefix
        self._memo: dict[tuple[str, str], np.ndarray] = {}
        self.requested = 0  # texts asked for, repeats included
        self.encoded = 0  # texts the wrapped encoder encoded

    def encode(self, texts: Sequence[str], batch_size: int = 32, prefix: str = "") -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.encoder.encode([], batch_size=batch_size, prefix=prefix)
        self.requested += len(texts)
        new = list(dict.fromkeys(t for t in texts if (prefix, t) not in self._memo))
        if new:
            rows = self.encoder.encode(new, batch_size=batch_size, prefix=prefix)
            rows.flags.writeable = False  # the memo holds views of it: nobody may change it in place
            self._memo.update(((prefix, t), row) for t, row in zip(new, rows, strict=True))
            self.encoded += len(new)
            if len(new) == len(texts):  # all new and distinct (a corpus): no second copy in memory
                return rows
        return np.stack([self._memo[prefix, t] for t in texts])
