"""Stage 7, judging (between evaluate and report; TREC-style pooled judging): a team's queries pooled from
every retriever, graded by people on a page, and exported as a graded set (a BEIR folder) that
`evaluate.retrieval_sets` imports, so the next verdict rests on it. FastAPI and uvicorn load only when the
page is served."""

from archive_encoders.judging.export import export_judgments
from archive_encoders.judging.pooling import build_pool

__all__ = ["build_pool", "export_judgments"]
