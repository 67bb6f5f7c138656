"""The report's account of the judged set (judging.json, written by `archive-encoders judgments export`):
how many queries people judged, how deep the pool was, how much of each retriever's top 10 they covered,
and how far two annotators agreed. Scores on a set are only as good as its judgments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archive_encoders.report.render import fmt

# Landis & Koch's bands: where kappa says agreement is too weak to rest a verdict on
KAPPA_BANDS = (
    (0.8, "almost perfect"),
    (0.6, "substantial"),
    (0.4, "moderate"),
    (0.2, "fair"),
    (0.0, "slight"),
)


def kappa_band(kappa: float | None) -> str:
    if kappa is None:
        return "undefined (one grade throughout)"
    return next((name for floor, name in KAPPA_BANDS if kappa >= floor), "worse than chance")


def judging_lines(record: Mapping[str, Any]) -> list[str]:
    """Markdown for the report's judging section, from a judging.json record."""
    grades = record.get("grades", {})
    typed = record.get("n_queries_typed", 0)
    lines = [
        f"{record['n_queries']} queries judged ({record['n_queries_with_relevant']} with a relevant passage, "
        f"the ones scored; {typed} typed on the judging page) by {len(record['annotators'])} annotator(s), "
        f"{record['n_judgments']} grades. Pool: the top {record.get('pool_depth', '?')} of each of "
        f"{record.get('n_pooled_systems', '?')} retrievers, deduplicated; graded passages: "
        f"{grades.get('2', 0)} relevant, {grades.get('1', 0)} partly, {grades.get('0', 0)} not "
        f"({record['merge_rule']}). A passage nobody judged counts as not relevant, as in TREC.",
        "",
        "| retriever | judged@10 | |",
        "|---|---|---|",
    ]
    coverage = sorted(record.get("judged_at_10", {}).items(), key=lambda item: (item[1]["judged"], item[0]))
    for system, row in coverage:
        flag = "**mostly unjudged**: its `judged` score is a lower bound" if row["flagged"] else ""
        lines.append(f"| `{system}` | {fmt(row['judged'], 2)} | {flag} |")
    kappas = record.get("kappa", {})
    lines.append("")
    if not kappas:
        lines.append(
            "No passage was graded by two annotators, so their agreement is unknown: have a second person "
            "judge some of the same queries (Cohen's kappa is reported on those)."
        )
    else:
        lines += ["| annotators | Cohen's kappa | passages both graded | agreement |", "|---|---|---|---|"]
        for pair, row in sorted(kappas.items()):
            lines.append(
                f"| {pair} | {fmt(row['kappa'], 2)} | {row['n_pairs']} | {kappa_band(row['kappa'])} |"
            )
    return lines
