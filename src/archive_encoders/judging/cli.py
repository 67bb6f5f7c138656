"""`archive-encoders judge` and `archive-encoders judgments export` (registered by index/cli.py).

    archive-encoders judge --pool results/judging/pool.parquet --db judgments.sqlite [--port 8001]
    archive-encoders judgments export --db judgments.sqlite --pool results/judging/pool.parquet \\
        --corpus results/datasets/querysets/test/corpus.parquet --out team_judged

Errors (a bad pool, a missing database, too few judged queries) print one line on stderr and exit 2.
Only argparse is imported here: the work is imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `judge` and `judgments export` to the `archive-encoders` subcommands; each sets `handler`."""
    judge = commands.add_parser("judge", help="serve the judging page for a pool of retrieved passages")
    judge.add_argument("--pool", required=True, help="pool.parquet (the top passages of every system)")
    judge.add_argument("--db", required=True, help="the judgments database (SQLite; created if missing)")
    judge.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    judge.add_argument("--port", type=int, default=8001, help="port to listen on (default 8001)")
    judge.set_defaults(handler=run_judge)

    judgments = commands.add_parser("judgments", help="the judgments made on the judging page")
    actions = judgments.add_subparsers(dest="judgments_command", required=True)
    export = actions.add_parser("export", help="write the judgments as a graded BEIR folder")
    export.add_argument("--db", required=True, help="the judgments database")
    export.add_argument("--pool", required=True, help="the pool.parquet that was judged")
    export.add_argument("--corpus", required=True, help="the corpus parquet the pool was drawn from")
    export.add_argument("--out", required=True, help="the BEIR folder to write (replaced atomically)")
    export.add_argument(
        "--min-queries", type=int, default=None, help="judged queries with a relevant passage needed"
    )
    export.set_defaults(handler=run_export)


def fail(command: str, message: str) -> int:
    print(f"archive-encoders {command}: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_judge(args: argparse.Namespace) -> int:
    from archive_encoders.judging.page import judging_app

    try:
        app = judging_app(args.db, args.pool)
    except (ValueError, OSError) as err:
        return fail("judge", str(err))
    import uvicorn

    print(f"judging {args.pool} into {args.db}: http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from archive_encoders.judging.export import MIN_QUERIES, export_judgments

    try:
        summary = export_judgments(
            args.db, args.pool, args.corpus, args.out, min_queries=args.min_queries or MIN_QUERIES
        )
    except (ValueError, OSError) as err:
        return fail("judgments export", str(err))
    print(
        f"{args.out}: {summary['n_queries']} queries, {summary['n_qrels']} graded passages "
        f"from {len(summary['annotators'])} annotator(s)",
        file=sys.stderr,
    )
    flagged = [system for system, row in summary["judged_at_10"].items() if row["flagged"]]
    if flagged:
        print(f"warning: top 10 mostly unjudged (judged@10 < 0.5): {', '.join(flagged)}", file=sys.stderr)
    return 0
