"""How fast archiving is, and what including the archive costs searches and reports.

    python -m cims.bench_archive [--customers N] [--requests N]

1. Seeds a database of its own (cims_bench_archive_<N>, default 20,000 customers) with
   `seed_demo` once, and dates everything in it three years back, so every customer is inactive;
   each run works on a fresh copy of it (cims_bench_archive_<N>_run).
2. Counts what would be archived (the dry run), takes the report figures, archives half of the
   customers with the command's function and times it.
3. Times searches of the list as the demo user staff, without and with "Include archive", for
   archived customers, and 50 restores; runs the reports again with the archive included and
   checks that every figure equals the one before archiving.
4. Writes the figures to docs/benchmarks.md under "## Archiving" (other sections are kept).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from psycopg import sql

from cims import bench
from cims.bench import _, say

SECTION = "## Archiving"
AGE = "interval '3 years'"
AGED = [
    ("customers_customer", ("created_at", "updated_at")),
    ("customers_order", ("ordered_at", "created_at")),
    ("customers_interaction", ("occurred_at", "created_at")),
    ("customers_consent", ("recorded_at",)),
    ("intake_submission", ("created_at",)),
]
REPORTS = {
    "Orders by month: count, sum": {
        "source": "orders",
        "group_by": ["ordered_month"],
        "aggregates": [{"func": "count"}, {"func": "sum", "field": "amount"}],
    },
    "Customers by province: count, revenue": {
        "source": "customers",
        "group_by": ["province"],
        "aggregates": [{"func": "count"}, {"func": "sum", "field": "revenue"}],
    },
    "Interactions by kind: count": {
        "source": "interactions",
        "group_by": ["kind"],
        "aggregates": [{"func": "count"}],
    },
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cims.bench_archive")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=50, help="per kind of search")
    args = parser.parse_args(argv)
    seed_url = bench.database_url(f"cims_bench_archive_{args.customers}")
    run_url = bench.database_url(f"cims_bench_archive_{args.customers}_run")
    static_root = Path(tempfile.mkdtemp(prefix="cims-bench-static-"))
    try:
        seed_env = bench.bench_environment(seed_url, static_root)
        prepare_seed(seed_url, args.customers, seed_env)
        copy_database(seed_url, run_url)
        env = bench.bench_environment(run_url, static_root)
        os.environ.update(env)
        import django

        django.setup()
        bench.manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        machine = bench.describe_machine()
        results = measure(args)
        machine["load_after"] = os.getloadavg()
        bench.write_report(render(results, machine, args), SECTION)
    finally:
        shutil.rmtree(static_root, ignore_errors=True)
    return 0


def prepare_seed(url, customers, env):
    """The seeded database, every date in it three years back (made once, then reused)."""
    name = urlsplit(url).path.lstrip("/")
    with bench._server(url) as server:
        if server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            say(_("Reusing %(name)s.") % {"name": name})
            return
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    bench.manage(env, "migrate", "--noinput", "--verbosity", "0")
    bench.manage(env, "seed_demo", "--customers", str(customers))
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for table, columns in AGED:
            moved = ", ".join(f"{c} = {c} - {AGE}" for c in columns)
            connection.execute(f"UPDATE {table} SET {moved}")
        connection.execute("VACUUM ANALYZE")


def copy_database(source, target):
    names = [urlsplit(url).path.lstrip("/") for url in (source, target)]
    with bench._server(source) as server:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(names[1])))
        server.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(*map(sql.Identifier, names[::-1]))
        )


def _percentiles(values):
    values = sorted(values)
    return statistics.median(values), values[max(0, int(len(values) * 0.95) - 1)]


def measure(args):
    from django.contrib.auth import get_user_model

    from customers import archiving
    from customers.models import ArchivedCustomer, Customer
    from reports import reporting

    admin = get_user_model().objects.get(username="admin")
    total = Customer.objects.count()
    cutoff = archiving.archive_cutoff(24)
    started = time.perf_counter()
    counts = archiving.inactive_counts(cutoff)
    dry_run = time.perf_counter() - started
    before = {name: list(reporting.build_table(d, admin).rows) for name, d in REPORTS.items()}
    run = archiving.archive_inactive(cutoff=cutoff, limit=total // 2)
    results = {"total": total, "counts": counts, "dry_run": dry_run, "run": run}

    staff = get_user_model().objects.get(username="staff")
    samples = list(
        ArchivedCustomer.objects.visible_to(staff)
        .filter(display_name__regex=r"^[\u4e00-\u9fff]{2,3}$")
        .exclude(email_index=None)
        .exclude(phone_index=None)[: args.requests]
    )
    client = bench._WsgiClient(bench._session_cookie())
    kinds = {
        "Name (Chinese)": lambda c: c.display_name,
        "Pinyin": lambda c: c.name_pinyin,
        "Whole phone number": lambda c: c.phone,
        "Last four digits of a phone": lambda c: c.phone[-4:],
        "Email address": lambda c: c.email,
    }
    searches = []
    for label, typed in kinds.items():
        row = [label]
        for archive in (False, True):
            times = []
            for sample in samples:
                query = {"q": typed(sample), **({"archive": "on"} if archive else {})}
                url = f"/customers/?{urlencode(query)}"
                started = time.perf_counter()
                bench._get(client, url)
                times.append((time.perf_counter() - started) * 1000)
            row.extend(_percentiles(times))
        searches.append(row)
    results["searches"], results["samples"] = searches, len(samples)

    reports = []
    for name, definition in REPORTS.items():
        timings = {}
        for archive in (False, True):
            started = time.perf_counter()
            rows = list(reporting.build_table({**definition, "archive": archive}, admin).rows)
            timings[archive] = ((time.perf_counter() - started) * 1000, rows)
        live_count = sum(r[1] for r in timings[False][1])
        all_count = sum(r[1] for r in timings[True][1])
        equal = timings[True][1] == before[name]
        reports.append((name, live_count, all_count, timings[False][0], timings[True][0], equal))
    results["reports"] = reports

    restores = []
    for archived in list(ArchivedCustomer.objects.order_by("?")[:50]):
        started = time.perf_counter()
        archiving.restore_customer(archived, user=admin)
        restores.append((time.perf_counter() - started) * 1000)
    results["restores"] = _percentiles(restores)
    return results


def render(results, machine, args):
    run, counts = results["run"], results["counts"]
    lines = [
        SECTION,
        "",
        f"Measured {machine['date']} on {results['total']:,} demo customers with "
        f"{counts['orders']:,} orders and {counts['interactions']:,} interactions, all dated "
        "three years back (database `cims_bench_archive_"
        f"{args.customers}`, copied for each run). Half of the customers are archived, then "
        "searched for, reported on and restored.",
        "",
        *bench._machine_table(machine),
        "",
        "### Archiving (`archive_customers`, batches of `ARCHIVE_BATCH_SIZE`)",
        "",
        "| Step | Customers | Interactions | Orders | Seconds | Customers/s |",
        "|---|--:|--:|--:|--:|--:|",
        f"| dry run (counting) | {counts['customers']:,} | {counts['interactions']:,} | "
        f"{counts['orders']:,} | {results['dry_run']:.1f} | |",
        f"| archiving | {run.customers:,} | {run.interactions:,} | {run.orders:,} | "
        f"{run.seconds:.1f} | {run.customers / run.seconds:,.0f} |",
        "",
        f"### Searching the list for archived customers ({results['samples']} of each, as `staff`)",
        "",
        "| Search | p50 ms | p95 ms | with archive p50 ms | with archive p95 ms |",
        "|---|--:|--:|--:|--:|",
        *(
            f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} |"
            for r in results["searches"]
        ),  # fmt: skip
        "",
        "### Reports as `admin` (figures with the archive compared with those before archiving)",
        "",
        "| Report | Live count | With archive | Live ms | With archive ms | Equal to before |",
        "|---|--:|--:|--:|--:|---|",
        *(
            f"| {name} | {live:,} | {everything:,} | {live_ms:.0f} | {all_ms:.0f} | "
            f"{'yes' if equal else '**no**'} |"
            for name, live, everything, live_ms, all_ms, equal in results["reports"]
        ),
        "",
        f"Restoring one customer with their history (50 restores): p50 "
        f"{results['restores'][0]:.1f} ms, p95 {results['restores'][1]:.1f} ms.",
        "",
        "To reproduce: `.venv/bin/python -m cims.bench_archive --customers 20000`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
