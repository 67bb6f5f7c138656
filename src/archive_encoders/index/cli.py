"""`archive-encoders search` and `serve`: query an index built by the `index` target, from the shell or a
browser.

    archive-encoders search --index results/index/recommended "письмо о пожаре"
    archive-encoders search --index results/index/recommended -k 5 --json --retriever bm25 "Lake Baikal"
    archive-encoders serve --index results/index/recommended --port 8000

`search` prints the top k with identifier, title, score and snippet (or, with --json, one JSON object),
by the recommended retriever unless --retriever names another (dense, bm25, hybrid). Imports
neither torch nor transformers: ONNX Runtime, OpenVINO or the static model's numpy path, with tokenizers
and usearch. Bad input (no index, a damaged or inconsistent index folder, an empty query, a query that is
not UTF-8, a query the model cannot read, a mismatched --encoder) prints one line on stderr and exits with
status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from collections.abc import Sequence

from archive_encoders.judging.cli import add_commands as add_judging_commands

EXIT_USAGE = 2
RETRIEVERS = ("dense", "bm25", "hybrid")  # index.search.RETRIEVERS, without importing the index here


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="archive-encoders", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="search an index for the passages nearest a query")
    search.add_argument("query", nargs="*", help="the query (several words may be given unquoted)")
    search.add_argument("--index", required=True, help="the index folder (results/index/recommended)")
    search.add_argument("-k", "--top", type=int, default=10, help="how many passages to show (default 10)")
    search.add_argument("--json", action="store_true", help="print one JSON object for machines")
    search.add_argument("--encoder", help="another copy of the index's encoder (checked against the index)")
    search.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    search.add_argument(
        "--retriever",
        choices=RETRIEVERS,
        default=None,
        help="dense, bm25 or hybrid (default: the one the report recommends, recorded in index.json)",
    )
    serve = commands.add_parser("serve", help="a search page and a JSON API over an index (FastAPI)")
    serve.add_argument("--index", required=True, help="the index folder (results/index/recommended)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    add_judging_commands(commands)
    args = parser.parse_args(argv)
    if getattr(args, "handler", None):  # judge, judgments export
        return args.handler(args)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.command == "serve":
        return run_serve(args)
    return run_search(args)


def run_serve(args: argparse.Namespace) -> int:
    from archive_encoders.index.search import SearchError, SearchIndex
    from archive_encoders.index.serve import serve

    try:
        index = SearchIndex(args.index, threads=args.threads)
    except (SearchError, OSError) as err:
        print(f"archive-encoders serve: {printable(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    serve(index, args.host, args.port)
    return 0


def run_search(args: argparse.Namespace) -> int:
    from archive_encoders.index.search import SearchError, SearchIndex, normalise_query

    if args.top < 1:
        return fail(f"-k {args.top}: give at least 1", args.json)
    started = time.perf_counter()
    try:
        query = normalise_query(" ".join(args.query))
        index = SearchIndex(args.index, encoder_dir=args.encoder, threads=args.threads)
        loaded = time.perf_counter()
        hits = index.search(query, args.top, retriever=args.retriever)
    except (SearchError, OSError) as err:
        return fail(str(err), args.json)
    done = time.perf_counter()
    warning = index.script_warning(query)
    if args.json:
        print(
            json.dumps(
                {
                    "query": query,
                    "index": printable(str(args.index)),
                    "model": index.manifest["model"],
                    "method": index.manifest["method"],
                    "variant": index.variant,
                    "retriever": args.retriever or index.retriever,
                    "warning": warning,
                    "load_ms": round(1000 * (loaded - started), 1),
                    "search_ms": round(1000 * (done - loaded), 2),
                    "hits": [h.as_dict() for h in hits],
                },
                ensure_ascii=False,
            )
        )
        return 0
    if warning:
        print(f"note: {warning}", file=sys.stderr)
    for hit in hits:
        print(f"{hit.rank:>2}. {hit.score:.3f}  {hit.doc_id}  {hit.title}")
        print(textwrap.indent(textwrap.fill(hit.snippet, width=96), "      "))
    footer = f"{len(hits)} of {index.count} passages, {args.retriever or index.retriever}, "
    footer += f"{index.manifest['model']}/{index.manifest['method']}/{index.variant}"
    print(f"-- {footer}, {1000 * (done - loaded):.1f} ms", file=sys.stderr)
    return 0


def printable(text: str) -> str:
    """`text` with undecodable bytes of a path (surrogate escapes) shown as \\x.. escapes: stdout is strict
    UTF-8, and a message must not turn into a traceback."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def fail(message: str, as_json: bool) -> int:
    message = printable(message)
    if as_json:
        print(json.dumps({"error": message}, ensure_ascii=False))
    print(f"archive-encoders search: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
