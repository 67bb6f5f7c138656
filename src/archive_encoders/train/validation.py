"""Validation while training: the val split's query sets score the model every few steps, the best
weights are kept, and a run that stops improving stops.

The val sets are the chunk-level sets of querysets.py (ict, keyword, spelling; their documents are
disjoint from test). A sample of queries per set (config `validation.max_queries`) ranks one sampled
corpus (every passage relevant to a sampled query, then val distractors up to `max_corpus`) with
sentence-transformers' InformationRetrievalEvaluator; every distinct passage text is encoded once per
validation and shared by the sets (a set's overrides, e.g. ict's passage with the query sentence cut
out, are texts of their own). The score is the mean NDCG@10 over the sets.

`Validation` is a transformers callback: it validates before the first step (so a run that only gets
worse exports the weights it started from), every `eval_steps` optimizer steps and at the end, keeps a
CPU copy of the trainable weights at the best score, stops training after `patience` validations without
a better one, and puts the best weights back when training ends.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.config import ModelSpec
from archive_encoders.datasets.querysets import CHUNK_LEVEL, read_split
from archive_encoders.sampling import sample_in_order

log = logging.getLogger(__name__)

METRIC = "ndcg@10"
SPLIT = "val"


class ValidationSets:
    """The sampled val query sets of one run, as InformationRetrievalEvaluators over a shared corpus."""

    def __init__(
        self,
        root: str | os.PathLike,
        settings: Mapping[str, Any],
        spec: ModelSpec,
        seed: int,
        batch_size: int = 32,
    ) -> None:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
        from sentence_transformers.util import cos_sim

        rng = np.random.default_rng(seed)
        corpus, sets = read_split(root, SPLIT)
        chosen = {n: sets[n] for n in settings["sets"] if n in sets and sets[n].level == CHUNK_LEVEL}
        if not chosen:
            raise ValueError(f"validation: none of the sets {settings['sets']} has val queries in {root}")
        queries = {n: sample_in_order(list(s.qrels), settings["max_queries"], rng) for n, s in chosen.items()}
        corpus = _sample_corpus(corpus, chosen, queries, settings["max_corpus"], rng)
        self.evaluators, self.positions, texts = {}, {}, {}
        for name, query_set in chosen.items():
            q, c, relevant = query_set.ir_inputs(corpus, spec.query_prefix, spec.passage_prefix)
            keep = set(queries[name])
            q = {qid: text for qid, text in q.items() if qid in keep}
            self.evaluators[name] = InformationRetrievalEvaluator(
                q,
                c,
                {qid: docs for qid, docs in relevant.items() if qid in keep},
                name=name,
                score_functions={"cosine": cos_sim},
                batch_size=batch_size,
                write_csv=False,
                show_progress_bar=False,
            )
            self.positions[name] = [texts.setdefault(t, len(texts)) for t in c.values()]
        self.texts = list(texts)
        self.batch_size = batch_size
        self.sizes = {n: len(e.queries) for n, e in self.evaluators.items()}
        self.passages = corpus.height
        log.info("validation: %s queries over %d passages (%d texts)", self.sizes, corpus.height, len(texts))

    def score(self, model) -> tuple[float, dict[str, float]]:
        """(mean NDCG@10 over the sets, {set: NDCG@10})."""
        embeddings = model.encode_document(
            self.texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        per_set = {}
        quiet = logging.getLogger(type(next(iter(self.evaluators.values()))).__module__)
        level, quiet.level = quiet.level, logging.WARNING  # it logs a dozen lines per set and call
        try:
            for name, evaluator in self.evaluators.items():
                metrics = evaluator(model, corpus_embeddings=embeddings[self.positions[name]])
                per_set[name] = float(metrics[f"{name}_cosine_{METRIC}"])
        finally:
            quiet.level = level
        return float(np.mean(list(per_set.values()))), per_set


def _sample_corpus(corpus: pl.DataFrame, sets, queries, max_corpus: int, rng) -> pl.DataFrame:
    """The passages relevant to the sampled queries, then random others up to max_corpus, in corpus order."""
    relevant = {cid for name, s in sets.items() for qid in queries[name] for cid in s.qrels[qid]}
    ids = corpus["corpus_id"].to_list()
    others = [cid for cid in ids if cid not in relevant]
    room = max(0, max_corpus - len(relevant))
    keep = relevant | set(sample_in_order(others, room, rng))
    return corpus.filter(pl.col("corpus_id").is_in(list(keep)))


def trainable_state(model) -> dict[str, Any]:
    """A CPU copy of the weights that training changes (LoRA: the adapters only)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def load_state(model, state: Mapping[str, Any]) -> None:
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device))


def validation_callback(
    model,
    score: Callable[[Any], tuple[float, dict]],
    every: int,
    patience: int,
    phase: str,
    select: bool = True,
):
    """The transformers callback (see the module docstring); `curve` and `summary()` hold what it saw.
    Without `select` it only records the curve (a phase that prepares the model for the next one)."""
    from transformers import TrainerCallback

    class Validation(TrainerCallback):
        def __init__(self) -> None:
            self.curve: list[dict[str, Any]] = []
            self.best: tuple[float, int] | None = None
            self.best_state: dict[str, Any] | None = None
            self.since_best = 0
            self.seconds = 0.0
            self.stopped_early = False

        def validate(self, step: int) -> None:
            started = time.perf_counter()
            value, per_set = score(model)
            model.train()
            point = {"step": step, "phase": phase, "score": value, "sets": per_set}
            self.curve.append(point)
            if self.best is None or value > self.best[0]:
                self.best, self.since_best = (value, step), 0
                self.best_state = trainable_state(model) if select else None
            else:
                self.since_best += 1
            self.seconds += time.perf_counter() - started
            log.info("%s step %d: val %s %.4f %s", phase, step, METRIC, value, per_set)

        def on_train_begin(self, args, state, control, **kwargs):
            self.validate(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if every and state.global_step % every == 0:
                self.validate(state.global_step)
                if (
                    select
                    and patience
                    and self.since_best >= patience
                    and state.global_step < state.max_steps
                ):
                    self.stopped_early = control.should_training_stop = True
                    log.info("%s: no better val score in %d validations, stopping", phase, patience)

        def on_train_end(self, args, state, control, **kwargs):
            if not self.curve or self.curve[-1]["step"] != state.global_step:
                self.validate(state.global_step)
            if select and self.best and self.best[1] != state.global_step:
                load_state(model, self.best_state)
                log.info("%s: restored the weights of step %d (val %.4f)", phase, *self.best[::-1])
            self.best_state = None

        def summary(self) -> dict[str, Any]:
            return {
                "selected": select,
                "best_step": self.best[1] if self.best else None,
                "best_score": self.best[0] if self.best else None,
                "stopped_early": self.stopped_early,
                "validation_s": round(self.seconds, 3),
            }

    return Validation()
