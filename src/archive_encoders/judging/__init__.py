"""Judging (between evaluate and report; TREC-style pooled judging): a team grades, on a page, the pooled
top passages of every system for its own queries; the grades become a graded evaluation set (a BEIR
folder) that `evaluate.retrieval_sets` imports. FastAPI and uvicorn load only when the page is served."""

from archive_encoders.judging.export import export_judgments

__all__ = ["export_judgments"]
