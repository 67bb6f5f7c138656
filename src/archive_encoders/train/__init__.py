"""Stage 4, train: one model x method run (phases, losses, validation, the merge back), the teachers'
embeddings and scores, and which pairs can run at all (`compatibility`)."""

from archive_encoders.train.run import train
from archive_encoders.train.teachers import teacher_embeddings, teacher_scores

__all__ = ["teacher_embeddings", "teacher_scores", "train"]
