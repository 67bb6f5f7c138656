"""The report: which retriever to deploy, the evidence per query set, what each variant and method costs.

Reads only the contracts of the earlier stages (docs/ARCHITECTURE.md), so it can be rerun alone and
tested on hand-made inputs: inputs.py reads them, tables.py builds the frames, choice.py makes the
paired non-inferiority decision, plot.py draws the Pareto panels, render.py and
templates/report.md.j2 write the markdown.
"""

from archive_encoders.report.write import corpus_size, write_report

__all__ = ["corpus_size", "write_report"]
