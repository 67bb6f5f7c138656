"""Markdown: tables from one column spec each (tabulate), report.md from a Jinja2 template."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def with_ci(row: Mapping[str, Any], column: str, digits: int = 3, signed: bool = False) -> str:
    """'0.412 [0.371, 0.455]' from a value column and its _ci_low/_ci_high columns."""
    value, low, high = row.get(column), row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if value is None:
        return "–"
    text = f"{value:+.{digits}f}" if signed else fmt(value, digits)
    if low is None or high is None:
        return text
    return (
        f"{text} [{low:+.{digits}f}, {high:+.{digits}f}]"
        if signed
        else f"{text} [{fmt(low, digits)}, {fmt(high, digits)}]"
    )


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Mapping[str, Any]], str]


def col(name: str, header: str | None = None, digits: int = 3) -> Column:
    return Column(header or name, lambda r: fmt(r.get(name), digits))


def ci(name: str, header: str, signed: bool = False) -> Column:
    return Column(header, lambda r: with_ci(r, name, signed=signed))


def table(frame: pl.DataFrame | Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A GitHub-flavoured markdown table of `frame`'s rows through the column spec."""
    from tabulate import tabulate

    rows = frame.iter_rows(named=True) if isinstance(frame, pl.DataFrame) else frame
    body = [[c.value(r).replace("|", "\\|") for c in columns] for r in rows]
    if not body:
        return "_(no rows)_\n"
    return (
        tabulate(body, headers=[c.header for c in columns], tablefmt="github", disable_numparse=True) + "\n"
    )


def row_name(row: Mapping[str, Any]) -> str:
    """How a row is named in prose: `model/method/variant`, `BM25`, or `model/method/variant + BM25 (rrf)`."""
    if row.get("retriever") == "lexical":
        return "`BM25`"
    name = f"`{row['model']}/{row['method']}/{row['variant']}`"
    if row.get("retriever", "dense") != "dense":
        name += f" + BM25 ({row['retriever'].removeprefix('hybrid-')})"
    return name


def render(template: str, **context: Any) -> str:
    """Render templates/<template> (package data) with the report's helpers available."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("archive_encoders", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # markdown, not HTML
    )
    env.filters.update(fmt=fmt, name=row_name)
    env.globals.update(with_ci=with_ci)
    return env.get_template(template).render(**context)
