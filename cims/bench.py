"""`make bench`: how fast the customer list and search are with a million customers.

    python -m cims.bench [--customers N] [--requests N] [--duration SECONDS] [--workers N]

1. Creates the database cims_bench on the server the app uses (DATABASE_URL's, or the embedded
   one), migrates it and seeds it with `seed_demo`; a database already seeded at the right size is
   reused. BENCH_CUSTOMERS (or --customers) sets another size for a quick run, in a database of
   its own (cims_bench_20000), so the big one stays.
2. Times requests inside Django, signed in as the demo user staff: the list's first page and page
   1,000, with and without a filter, and searches by Chinese characters, pinyin, the last four
   digits of a phone and an email address.
3. Runs gunicorn on the database with production settings and drives the list page with wrk.
4. Writes the figures, the machine and the commands to docs/benchmarks.md, under
   "## Customer list and search" (other sections of the file are kept).

It is a benchmark, not a test: it fails only when it cannot run, never because a goal is missed.
"""

import argparse
import datetime
import json
import os
import platform
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from psycopg import sql

from cims import crypto, embedded
from cims.devstack import wait_until_ready

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
REPORT = BASE_DIR / "docs" / "benchmarks.md"
SECTION = "## Customer list and search"
DEFAULT_CUSTOMERS = 1_000_000
PAGE_SIZE = 50  # the list's default
DEEP_PAGE = 1000

SEARCH_GOAL_MS = 30
LIST_GOAL_MS = 100
THROUGHPUT_GOAL = 300  # requests per second
LOAD_P99_GOAL_MS = 100

# Two-character fragments people type: given names, and family name with given name.
CHINESE_QUERIES = [
    "张伟", "王芳", "李娜", "刘洋", "陈静", "建华", "秀英", "志强", "子涵", "晓明",
    "丽娟", "海涛", "俊杰", "婷婷", "国强", "王伟", "李静", "张敏", "欣怡", "浩然",
]  # fmt: skip
PINYIN_QUERIES = [
    "zhang wei", "zw", "wang", "li na", "chen", "liu yang", "zhangwei", "wf", "huang", "xiuying",
    "lj", "zhao", "wang fang", "hai tao", "xm", "zhou", "junjie", "lin", "wu", "chen jing",
]  # fmt: skip

# Counts non-2xx answers (wrk itself counts only 4xx and 5xx) and prints the figures as JSON.
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local non2xx = 0
  for _, thread in ipairs(threads) do non2xx = non2xx + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50": %d, "p95": %d, "p99": %d, "max": %d}\\n',
    summary.requests, summary.duration, non2xx, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def _(text):
    """Console messages are translatable; Django is set up before the first one."""
    from django.utils.translation import gettext

    return gettext(text)


@dataclass
class Timings:
    """Latencies of one kind of request, in milliseconds."""

    name: str
    goal_ms: float
    total: list
    database: list

    @staticmethod
    def percentile(values, p):
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def passed(self):
        return self.percentile(self.total, 95) < self.goal_ms


def main(argv):
    args = parse_args(argv)
    started = embedded.start_missing()
    try:
        return run(args)
    finally:
        embedded.stop(started)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m cims.bench", description=__doc__.split("\n")[0]
    )
    default = int(os.environ.get("BENCH_CUSTOMERS", DEFAULT_CUSTOMERS))
    parser.add_argument(
        "--customers", type=int, default=default, help="default: BENCH_CUSTOMERS or 1000000"
    )
    parser.add_argument("--requests", type=int, default=200, help="per kind of request")
    parser.add_argument("--duration", type=int, default=30, help="of the load test, in seconds")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="gunicorn's (default: cores + 1)")
    parser.add_argument(
        "--import-rows",
        default=os.environ.get("BENCH_IMPORT_ROWS", "100000,1000000"),
        help="sizes of the files imported, comma-separated (0 skips the import section)",
    )
    parser.add_argument(
        "--sections",
        default=os.environ.get("BENCH_SECTIONS", "list,reports,imports,partitions,backups"),
        help="which sections to measure, comma-separated: list, reports, imports, partitions, "
        "backups",
    )
    parser.add_argument(
        "--import-export-rows",
        type=int,
        default=5000,
        help="rows of the same file imported with django-import-export, for comparison",
    )
    return parser.parse_args(argv)


def run(args):
    name = "cims_bench" if args.customers == DEFAULT_CUSTOMERS else f"cims_bench_{args.customers}"
    url = database_url(name)
    static_root = Path(tempfile.mkdtemp(prefix="cims-bench-static-"))
    env = bench_environment(url, static_root)
    os.environ.update(env)
    import django

    django.setup()
    try:
        seeding = prepare_database(url, args.customers, env)
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        sections = set(args.sections.split(","))
        if "list" in sections:
            data, machine = describe_data(), describe_machine()
            timings = measure_requests(args.requests)
            load = load_test(env, args)
            machine["load_after"] = os.getloadavg()
            write_report(render_section(data, seeding, machine, timings, load, args))
        if "reports" in sections:
            machine = describe_machine()
            results = measure_reports()
            machine["load_after"] = os.getloadavg()
            write_report(render_reports_section(describe_data(), machine, results), REPORTS_SECTION)
        if "partitions" in sections:
            from customers.partitions import measure_partitions

            say(_("Measuring partition pruning and archiving…"))
            machine = describe_machine()
            results = measure_partitions()
            machine["load_after"] = os.getloadavg()
            write_report(render_partitions_section(results, machine), PARTITIONS_SECTION)
        if "backups" in sections:
            say(_("Making, checking and restoring a backup…"))
            machine = describe_machine()
            results = measure_backups()
            machine["load_after"] = os.getloadavg()
            write_report(render_backups_section(results, machine), BACKUPS_SECTION)
        sizes = [int(n) for n in args.import_rows.split(",") if int(n)]
        if "imports" in sections and sizes:
            results = measure_imports(sizes, args.import_export_rows, env)
            write_report(render_import_section(results, describe_machine()), IMPORT_SECTION)
    finally:
        shutil.rmtree(static_root, ignore_errors=True)
    return 0


def say(text):
    print(text, flush=True)


# Database ----------------------------------------------------------------------------------


def database_url(name):
    """The URL of database `name` on the server the app uses."""
    url = os.environ.get("DATABASE_URL") or embedded.database_url()
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def bench_environment(url, static_root):
    """Production settings (DEBUG off, WhiteNoise, hashed static files) on the bench database."""
    return {
        "DATABASE_URL": url,
        "REDIS_URL": os.environ.get("REDIS_URL") or embedded.redis_url(),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "STATIC_ROOT": str(static_root),
        "CACHE_KEY_PREFIX": "cims-bench",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "cims.settings",
        # The bench database keeps its customers between runs, so its keys are kept too.
        **crypto.development_keys(BASE_DIR / "var" / "keys" / "bench-keys.json"),
        "AUDIT_SIGNING_KEY_FILE": str(BASE_DIR / "var" / "keys" / "bench-audit-signing-key.pem"),
        "AUDIT_SIGNING_KEY_AUTOCREATE": "1",
    }


def manage(env, *args):
    command = [PYTHON, "manage.py", *args]
    subprocess.run(command, cwd=BASE_DIR, env={**os.environ, **env}, check=True)


def prepare_database(url, customers, env):
    """Create, migrate and seed the database; return how its seeding went, if known.

    The seeding time and date are kept in the database's comment, so a run that reuses the
    database still reports them.
    """
    name = urlsplit(url).path.lstrip("/")
    with _server(url) as server:
        if not server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            say(_("Creating the database %(name)s…") % {"name": name})
            server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    present = _customer_count()
    values = {"name": name, "present": f"{present:,}", "customers": f"{customers:,}"}
    if present == customers:
        say(_("Reusing %(name)s, which holds %(customers)s customers.") % values)
        return _seeding_record(url, name, customers)
    if present > customers:
        raise SystemExit(
            _(
                "%(name)s holds %(present)s customers, more than %(customers)s; drop it "
                "(dropdb %(name)s) to start again."
            )
            % values
        )
    say(_("Seeding %(name)s with %(customers)s customers (a million take minutes)…") % values)
    started = time.monotonic()
    manage(env, "seed_demo", "--customers", str(customers))
    record = {"customers": customers, "seconds": round(time.monotonic() - started, 1)}
    record["date"] = datetime.date.today().isoformat()
    with _server(url) as server:
        comment = sql.SQL("COMMENT ON DATABASE {} IS {}")
        server.execute(comment.format(sql.Identifier(name), sql.Literal(json.dumps(record))))
    return record


def _server(url):
    """A connection to the maintenance database of the server that holds `url`."""
    import psycopg

    return psycopg.connect(urlunsplit(urlsplit(url)._replace(path="/postgres")), autocommit=True)


def _seeding_record(url, name, customers):
    with _server(url) as server:
        row = server.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    try:
        record = json.loads(row[0])
    except (TypeError, ValueError):
        return None
    return record if record.get("customers") == customers else None


def _customer_count():
    from customers.models import Customer

    return Customer.objects.count()


def describe_data():
    from django.db import connection

    from customers.models import Customer, Interaction, Order

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), pg_database_size(current_database())")
        name, size = cursor.fetchone()
    return {
        "name": name,
        "size": size,
        "customers": Customer.objects.count(),
        "orders": Order.objects.count(),
        "interactions": Interaction.objects.count(),
    }


def describe_machine():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {
        "cpu": _proc_value("/proc/cpuinfo", "model name") or platform.processor() or "?",
        "cores": os.cpu_count(),
        "memory_gb": round(int(_proc_value("/proc/meminfo", "MemTotal").split()[0]) / 1024**2, 1),
        "system": f"{platform.system()} {platform.release()}",
        "postgres": postgres,
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load_before": os.getloadavg(),
        "python_speed_ms": python_speed_ms(),
    }


def python_speed_ms():
    """Milliseconds for two million additions in a Python loop (best of five).

    A shared machine's CPU speed changes from day to day; this puts the figures of two runs on
    one scale: a page that takes twice as long on a machine half as fast has not got slower.
    """
    best = float("inf")
    for _attempt in range(5):
        started, total = time.perf_counter(), 0
        for number in range(2_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best * 1000)


def _proc_value(path, key):
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return ""


# Requests inside Django ---------------------------------------------------------------------


def measure_requests(count):
    """Time `count` requests of each kind through the whole Django stack."""
    client = _WsgiClient(_session_cookie())
    rng = random.Random(2026)
    phone_endings = [f"{rng.randrange(10_000):04d}" for _ in range(count)]
    deep, deep_url = _deep_page({})
    deep_active, deep_active_url = _deep_page({"status": "active"})
    kinds = [
        ("List, first page", LIST_GOAL_MS, lambda i: "/customers/"),
        (f"List, page {deep:,}", LIST_GOAL_MS, deep_url),
        ("List, first page, status active", LIST_GOAL_MS, _list({"status": "active"})),
        (f"List, page {deep_active:,}, status active", LIST_GOAL_MS, deep_active_url),
        ("Search, two Chinese characters", SEARCH_GOAL_MS, _search(CHINESE_QUERIES)),
        ("Search, pinyin", SEARCH_GOAL_MS, _search(PINYIN_QUERIES)),
        ("Search, last four digits of a phone", SEARCH_GOAL_MS, _search(phone_endings)),
        ("Search, email address", SEARCH_GOAL_MS, _search(_sample_emails(count, rng))),
    ]
    return [_time_requests(client, name, goal, url, count) for name, goal, url in kinds]


def _list(query):
    return lambda i: f"/customers/?{urlencode(query)}"


def _search(queries):
    return lambda i: f"/customers/?{urlencode({'q': queries[i % len(queries)]})}"


def _deep_page(filters):
    """(page number, URL) of page 1,000, or of the last page of a smaller list.

    The page is reached through its cursor, which one OFFSET query finds.
    """
    from accounts.permissions import visible_customers
    from cims.paging import keyset_page
    from customers.filters import DEFAULT_SORT, SORTS
    from customers.models import Customer

    order = SORTS[DEFAULT_SORT]
    customers = visible_customers(_staff(), Customer.objects.filter(**filters))
    number = max(2, min(DEEP_PAGE, (customers.count() - 1) // PAGE_SIZE + 1))
    start = (number - 1) * PAGE_SIZE - 1
    ids = customers.order_by(*order).values_list("pk", flat=True)[start : start + 2]
    # The cursor after the last row of the page before, made by the function the list uses.
    cursor = keyset_page(customers.filter(pk__in=list(ids)), order=order, size=1).next_cursor
    return number, _list({**filters, "after": cursor, "page": number})


def _staff():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="staff")


def _sample_emails(count, rng):
    from customers.models import Customer

    # Emails are stored encrypted: read them through the model, which decrypts them.
    emails = [
        c.email for c in Customer.objects.filter(email__isnull=False).only("id", "email")[:50_000]
    ]
    return rng.sample(emails, min(count, len(emails)))


def _time_requests(client, name, goal, url, count):
    from django.db import connection

    say(_("Timing %(count)s requests: %(name)s…") % {"count": count, "name": name})
    for i in range(10):  # warm-up: templates, the connection, PostgreSQL's caches
        _get(client, url(i))
    total, database = [], []
    for i in range(count):
        spent = []

        def timed(execute, sql, params, many, context, spent=spent):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent.append(time.perf_counter() - started)

        started = time.perf_counter()
        with connection.execute_wrapper(timed):
            _get(client, url(i))
        total.append((time.perf_counter() - started) * 1000)
        database.append(sum(spent) * 1000)
    return Timings(name, goal, total, database)


class _WsgiClient:
    """Calls Django's WSGI handler as gunicorn does.

    Django's test client also records every rendered template and its context, which costs
    several milliseconds on a page like the list and would be counted as the server's time.
    """

    def __init__(self, cookie):
        import gc

        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()
        self.cookie = cookie
        gc.freeze()  # as cims.wsgi does once the application is loaded

    def get(self, url):
        import io

        path, _sep, query = url.partition("?")
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_COOKIE": self.cookie,
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }
        status = []
        body = self.handler(environ, lambda line, headers, exc_info=None: status.append(line))
        b"".join(body)
        body.close()
        return int(status[0].split()[0])


def _get(client, url):
    status = client.get(url)
    if status != 200:
        raise SystemExit(_("GET %(url)s answered %(status)s.") % {"url": url, "status": status})
    return status


# Load test -------------------------------------------------------------------------------


def load_test(env, args):
    """Drive the list's first page on gunicorn with wrk; return wrk's figures."""
    workers = args.workers or (os.cpu_count() or 1) + 1
    port = _free_port()
    say(
        _("Load test: gunicorn with %(workers)s workers, %(connections)s connections for %(s)s s…")
        % {"workers": workers, "connections": args.connections, "s": args.duration}
    )
    gunicorn = str(Path(PYTHON).parent / "gunicorn")
    server = subprocess.Popen(
        [gunicorn, "cims.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
        + ["--log-level", "warning"],
        cwd=BASE_DIR,
        env={**os.environ, **env},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_ready(f"{base}/readyz", server)
        cookie = _session_cookie()
        _check_signed_in(f"{base}/customers/", cookie)
        figures = _run_wrk(f"{base}/customers/", cookie, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {**figures, "workers": workers, "connections": args.connections, "s": args.duration}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(url, server):
    if wait_until_ready(url, [server]):
        return
    if server.poll() is not None:
        raise SystemExit(_("gunicorn stopped before it was ready."))
    raise SystemExit(_("gunicorn did not answer %(url)s in time.") % {"url": url})


def _session_cookie():
    """A signed-in session of staff, stored in the database gunicorn reads."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(_staff())
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _check_signed_in(url, cookie):
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=30) as response:
        # Without a valid session the list redirects to the sign-in page.
        if response.status != 200 or "/accounts/" in response.url:
            raise SystemExit(_("The load test's session is not signed in."))


def _run_wrk(url, cookie, args):
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        command = [
            "wrk", "--threads", "2", "--connections", str(args.connections),
            "--duration", f"{args.duration}s", "--timeout", "10s",
            "--header", f"Cookie: {cookie}", "--script", script.name, url,
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return {
        "rate": result["requests"] / (result["duration_us"] / 1e6),
        "requests": result["requests"],
        "errors": sum(result[k] for k in ("non2xx", "connect", "read", "write", "timeout")),
        **{p: result[p] / 1000 for p in ("p50", "p95", "p99", "max")},
    }


# Report ------------------------------------------------------------------------------------


def write_report(section, heading=SECTION):
    say("\n" + section)
    REPORT.parent.mkdir(exist_ok=True)
    existing = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    REPORT.write_text(replace_section(existing, section, heading))
    say(_("Figures written to %(path)s.") % {"path": REPORT.relative_to(BASE_DIR)})


def replace_section(document, section, heading=SECTION):
    """`document` with its section `heading` replaced by `section`, or `section` added."""
    lines = document.rstrip("\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    before = "\n".join(lines[:start]).rstrip("\n")
    after = "\n".join(lines[end:])
    return f"{before}\n\n{section.rstrip()}\n" + (f"\n{after}\n" if after else "")


def render_section(data, seeding, machine, timings, load, args):
    """The report's section, in Markdown (documentation, so in English)."""
    seeded = "seeded earlier"
    if seeding:
        seeded = f"seeded in {_duration(seeding['seconds'])} on {seeding['date']}"
    intro = (
        f"Measured {machine['date']} on {data['customers']:,} customers, {data['orders']:,} "
        f"orders and {data['interactions']:,} interactions (database `{data['name']}`, "
        f"{data['size'] / 1024**3:.1f} GB, {seeded} by `seed_demo`)."
    )
    return "\n".join(
        [SECTION, "", intro, "", *_machine_table(machine), "", *_request_table(timings, args)]
        + ["", *_load_table(load), "", *_reproduce(args, load), ""]
    )


def _machine_table(machine):
    return [
        "| Machine | |",
        "|---|---|",
        f"| CPU | {machine['cpu']}, {machine['cores']} cores |",
        f"| Memory | {machine['memory_gb']} GB |",
        f"| System | {machine['system']} |",
        f"| PostgreSQL | {machine['postgres']} |",
        f"| Python | {machine['python']} |",
        f"| Python speed | 2,000,000 additions in {machine.get('python_speed_ms', '?')} ms |",
        f"| Load average (1, 5, 15 min) | {_load(machine['load_before'])} before, "
        f"{_load(machine['load_after'])} after |",
    ]


def _request_table(timings, args):
    lines = [
        f"### Requests inside Django ({args.requests} of each, signed in as `staff`)",
        "",
        "Each request goes through the whole Django stack (middleware, view, template), called "
        "as gunicorn calls it, with production settings; *SQL* is the part spent in the "
        "database.",
        "",
        "| Request | p50 ms | p95 ms | p99 ms | max ms | SQL p95 ms | Goal (p95) | |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for t in timings:
        figures = [t.percentile(t.total, p) for p in (50, 95, 99, 100)]
        figures.append(t.percentile(t.database, 95))
        cells = " | ".join(f"{f:.1f}" for f in figures)
        lines.append(f"| {t.name} | {cells} | < {t.goal_ms} ms | {_verdict(t.passed)} |")
    return lines


def _load_table(load):
    passed = (
        load["rate"] >= THROUGHPUT_GOAL and load["p99"] < LOAD_P99_GOAL_MS and load["errors"] == 0
    )
    goal = f"≥ {THROUGHPUT_GOAL}/s, p99 < {LOAD_P99_GOAL_MS} ms, no errors"
    cells = " | ".join(f"{load[p]:.1f}" for p in ("p50", "p95", "p99", "max"))
    return [
        f"### Load test: the list's first page on gunicorn ({load['workers']} workers), "
        f"wrk with {load['connections']} connections for {load['s']} s",
        "",
        "| Requests/s | p50 ms | p95 ms | p99 ms | max ms | Requests | Errors | Goal | |",
        "|--:|--:|--:|--:|--:|--:|--:|---|---|",
        f"| {load['rate']:.0f} | {cells} | {load['requests']:,} | {load['errors']} | {goal} | "
        f"{_verdict(passed)} |",
        "",
        "Errors count failed connections, timeouts and every answer other than 2xx.",
    ]


def _reproduce(args, load):
    return [
        "To reproduce (`make bench` installs wrk with apt-get when it is missing):",
        "",
        "```sh",
        "make bench                        # a million customers; the first run seeds them",
        "BENCH_CUSTOMERS=20000 make bench  # a quick run on a small database of its own",
        f".venv/bin/python -m cims.bench --customers {args.customers} --requests {args.requests} "
        f"--duration {args.duration} --connections {args.connections} --workers {load['workers']}",
        "```",
    ]


def _verdict(passed):
    return "pass" if passed else "**fail**"


def _load(averages):
    return ", ".join(f"{a:.2f}" for a in averages)


def _duration(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


# Imports -----------------------------------------------------------------------------------

REPORTS_SECTION = "## Dashboard, analysis and reports"


def measure_reports():
    """The figures of the dashboard, the pivots, the analytics refresh and the exports, each
    measured by a function of its own module (they read, or roll back what they write)."""
    from reports.analysis import measure_pivots
    from reports.dashboard import measure_dashboard
    from reports.exports import measure_exports
    from reports.metrics import measure_metrics_refresh
    from reports.scheduling import measure_dispatch

    say(_("Measuring the dashboard…"))
    dashboard = measure_dashboard()
    say(_("Measuring the analysis pivots…"))
    pivots = measure_pivots(usernames=("manager",))
    say(_("Measuring the customer analytics refresh…"))
    metrics = measure_metrics_refresh()
    say(_("Measuring the exports…"))
    exports = measure_exports()
    say(_("Measuring the dispatch of scheduled reports…"))
    dispatch = measure_dispatch()
    return {
        "dashboard": dashboard,
        "pivots": pivots,
        "metrics": metrics,
        "exports": exports,
        "dispatch": dispatch,
    }


def render_reports_section(data, machine, results):
    """The reports section, in Markdown."""
    lines = [
        REPORTS_SECTION,
        "",
        f"Measured {machine['date']} on {data['customers']:,} customers and {data['orders']:,} "
        f"orders (database `{data['name']}`; load average {_load(machine['load_before'])} "
        f"before, {_load(machine['load_after'])} after; the machine as in the list section).",
        "",
        "### Dashboard (the view, figures and page, 20 runs each)",
        "",
        "| User | Customers seen | Median ms | Max ms | Goal | |",
        "|---|--:|--:|--:|---|---|",
    ]
    for user, figures in results["dashboard"].items():
        lines.append(
            f"| `{user}` | {figures['customers']:,} | {figures['median_ms']:.1f} | "
            f"{figures['max_ms']:.1f} | < 200 ms | {_verdict(figures['median_ms'] < 200)} |"
        )
    lines += [
        "",
        "### Analysis pivots (two dimensions, best of 3)",
        "",
        "| Pivot | Seconds | Goal | |",
        "|---|--:|---|---|",
    ]
    for name, seconds in results["pivots"].items():
        if name == "customers":
            continue
        over_orders = "customers" not in name.rsplit(",", 1)[-1]
        goal = 1.0 if over_orders else 0.5
        lines.append(f"| {name} | {seconds:.3f} | < {goal:g} s | {_verdict(seconds < goal)} |")
    metrics = results["metrics"]
    lines += [
        "",
        "### RFM and lifetime value refresh (all customers, rolled back)",
        "",
        f"Over {metrics['customers']:,} customers and {metrics['orders']:,} orders. Every run "
        "ranks all customers; only rows whose figures changed are written.",
        "",
        "| Run | Rows changed | Seconds | Database CPU s | Goal | |",
        "|---|--:|--:|--:|---|---|",
        f"| first (as found) | {metrics['rows_changed_first']:,} | {metrics['first_seconds']:.2f} "
        f"| {metrics['first_cpu_seconds']:.2f} | | |",
        f"| nothing changed since | 0 | {metrics['unchanged_seconds']:.2f} | "
        f"{metrics['unchanged_cpu_seconds']:.2f} | < 5 s | "
        f"{_verdict(metrics['unchanged_seconds'] < 5)} |",
        f"| after {metrics['new_orders']:,} new orders (a day of trade) | "
        f"{metrics['rows_changed_after_orders']:,} | {metrics['after_orders_seconds']:.2f} | "
        f"{metrics['after_orders_cpu_seconds']:.2f} | < 5 s | "
        f"{_verdict(metrics['after_orders_seconds'] < 5)} |",
    ]
    exports = results["exports"]
    goals = {"xlsx": (10, 150), "csv": (None, None), "pdf": (6, 400)}
    lines += [
        "",
        "### Exports (made-up rows, each written by a process of its own)",
        "",
        "| Format | Rows × columns | Seconds | CPU s | Peak MB | Goal | |",
        "|---|--:|--:|--:|--:|---|---|",
    ]
    for fmt, figures in exports.items():
        seconds_goal, memory_goal = goals.get(fmt, (None, None))
        goal, verdict = "", ""
        if seconds_goal:
            goal = f"< {seconds_goal} s, < {memory_goal} MB"
            verdict = _verdict(
                figures["seconds"] < seconds_goal and figures["peak_mb"] < memory_goal
            )
        lines.append(
            f"| {fmt} | {figures['rows']:,} × {figures['columns']} | {figures['seconds']:.2f} | "
            f"{figures['cpu_seconds']:.2f} | {figures['peak_mb']} | {goal} | {verdict} |"
        )
    dispatch = results["dispatch"]
    lines += [
        "",
        f"Scheduled reports: one dispatch of {dispatch['schedules']:,} due schedules "
        f"({dispatch['deliveries']:,} deliveries) took {dispatch['dispatch_ms']:,.0f} ms.",
        "",
        "Peak memory is the writing process's maximum resident size (VmHWM), interpreter and "
        "Django included. To reproduce:",
        "",
        "```sh",
        "make bench                                        # every section",
        ".venv/bin/python -m cims.bench --sections reports  # this section only",
        "```",
        "",
    ]
    return "\n".join(lines)


PARTITIONS_SECTION = "## Partitions and archiving"


def render_partitions_section(results, machine):
    """The partitions section, in Markdown."""
    ratio = results["plain_ms"] / results["partitioned_ms"] if results["partitioned_ms"] else 0
    lines = [
        PARTITIONS_SECTION,
        "",
        f"Measured {machine['date']} on {results['orders']:,} orders in "
        f"{results['partitions']} partitions of `customers_order` (a month each, and DEFAULT). "
        f"The query: the orders of {results['month']} summed per currency (best of 5). "
        f"{machine['cores']} cores; load average {_load(machine['load_before'])} before, "
        f"{_load(machine.get('load_after', machine['load_before']))} after.",
        "",
        "| Table | Partitions read | Rows read | ms |",
        "|---|--:|--:|--:|",
        f"| partitioned by month | {results['partitions_read']} of {results['partitions']} | "
        f"{results['rows_read']:,} | {results['partitioned_ms']:.1f} |",
        f"| one plain table, index on ordered_at | 1 | {results['plain_rows_read']:,} | "
        f"{results['plain_ms']:.1f} |",
        "",
        f"Pruned to the month's partition, the query scans that partition alone, sequentially: "
        f"{ratio:.2g} × as fast as the same rows found through the plain table's index. Queries "
        "without a time condition read every partition, as they read the whole table before.",
        "",
        "`archive_history`'s work per month, for the oldest months and last month (copied to "
        "the archive, detached and dropped, one transaction each; rolled back):",
        "",
        "| Table | Month | Rows | Seconds | Rows per second |",
        "|---|---|--:|--:|--:|",
    ]
    for done in results["archived"]:
        rate = f"{done.rows / done.seconds:,.0f}" if done.seconds and done.rows else "–"
        lines.append(
            f"| `{done.table}` | {done.month:%Y-%m} | {done.rows:,} | {done.seconds:.3f} | {rate} |"
        )
    lines += [
        "",
        f"Without partitions, moving {results['month']}'s {results['plain_move_rows']:,} orders "
        "from the plain copy to the archive (`DELETE … RETURNING` into the archive table, "
        f"without the live table's triggers) took {results['plain_move_seconds']:.3f} s, and "
        "leaves the deleted rows and their index entries for VACUUM; a dropped partition leaves "
        "nothing behind.",
        "",
        "```sh",
        ".venv/bin/python -m cims.bench --sections partitions  # this section only",
        "```",
        "",
    ]
    return "\n".join(lines)


BACKUPS_SECTION = "## Backups"


def measure_backups():
    """Time a backup of the whole database, a full check of it, and its restore into a scratch
    database, with a key pair made for the run."""
    from django.db import connection
    from django.test import override_settings

    from accounts import backup_container, backups
    from accounts.models import Backup

    results = {}
    with tempfile.TemporaryDirectory(prefix="cims-bench-backup-") as directory:
        directory = Path(directory)
        private, public = directory / "private.pem", directory / "public.pem"
        backup_container.create_key_pair(private, public)
        to = backups.LocalDestination(directory / "out")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            results["database_bytes"] = cursor.fetchone()[0]
        with override_settings(BACKUP_PUBLIC_KEY_FILE=str(public)):
            backup = backups.create_backup(trigger=Backup.Trigger.COMMAND)
            started = time.perf_counter()
            backups.run_backup(backup, to=to)
            results["backup_seconds"] = time.perf_counter() - started
        path = to.local_path(backup.name)
        results["backup_bytes"] = path.stat().st_size
        key = backups.private_key(private)
        started = time.perf_counter()
        checked = backups.check_backup(path, key)
        results["check_seconds"] = time.perf_counter() - started
        results["rows"] = sum(t["rows"] for t in checked.manifest["database"]["tables"].values())
        # The restore drill: into a scratch database, compared with the manifest, dropped.
        started = time.perf_counter()
        backups.drill(backup, key, to=to)
        results["restore_seconds"] = time.perf_counter() - started
    return results


def render_backups_section(results, machine):
    """The backups section, in Markdown."""
    size_mb = results["database_bytes"] / 1e6

    def rate(seconds):
        return f"{size_mb / seconds:,.1f}" if seconds else "–"

    lines = [
        BACKUPS_SECTION,
        "",
        f"Measured {machine['date']} on the benchmark database ({_customer_count():,} demo "
        f"customers): {size_mb:,.0f} MB on disk "
        f"(`pg_database_size`), {results['rows']:,} rows; the backup is "
        f"{results['backup_bytes'] / 1e6:,.0f} MB (pg_dump's compression, then AES-256-GCM). "
        f"{machine['cores']} cores; load average {_load(machine['load_before'])} before, "
        f"{_load(machine.get('load_after', machine['load_before']))} after.",
        "",
        "| Step | Seconds | MB per second |",
        "|---|--:|--:|",
        f"| `backup` (pg_dump in one snapshot, row counts and checksums of every table, "
        f"encryption; MB of database) | {results['backup_seconds']:.1f} | "
        f"{rate(results['backup_seconds'])} |",
        f"| `restore --verify-only` (every chunk and part checked, nothing written; MB of "
        f"backup) | {results['check_seconds']:.1f} | "
        f"{results['backup_bytes'] / 1e6 / results['check_seconds']:,.0f} |",
        f"| `restore` into a new database (check, pg_restore in one transaction, every table "
        f"compared with the manifest, audit trail verified; MB of database) | "
        f"{results['restore_seconds']:.1f} | "
        f"{rate(results['restore_seconds'])} |",
        "",
        "```sh",
        ".venv/bin/python -m cims.bench --sections backups  # this section only",
        "```",
        "",
    ]
    return "\n".join(lines)


IMPORT_SECTION = "## Customer import"
IMPORT_GOAL = 15_000  # rows per second, end to end
IMPORT_HEADERS = [
    "客户编号", "姓名", "性别", "手机", "邮箱", "生日", "公司", "职位", "省份", "城市", "区",
    "地址", "邮编", "标签", "来源", "状态", "备注",
]  # fmt: skip


def write_import_file(path, count, existing):
    """A realistic CSV of `count` customers, as a Chinese CRM export: about 3 % are customers
    the database already has (same mobile number), 1 % have a bad phone or email."""
    import csv

    from pypinyin import lazy_pinyin

    from customers import demo

    rng = random.Random(count)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(IMPORT_HEADERS)
        for i in range(count):
            index = 50_000_000 + i  # phones and emails no demo customer has
            gender = demo.pick(rng, demo.GENDERS)
            family, given = demo._chinese_name(rng, gender)
            province, city, district, street, postcode = demo._address(rng)
            company, title = demo._work(rng, city, False)
            phone = demo.phone_number(index)[3:]
            email = ""
            if rng.random() < 0.7:
                email = f"{''.join(lazy_pinyin(family + given))}{index}@example.com"
            chance = rng.random()
            if chance < 0.03 and existing:
                phone = demo.phone_number(rng.randrange(existing))[3:]
            elif chance < 0.035:
                phone = "12345"
            elif chance < 0.04:
                email = "not-an-email"
            if rng.random() < 0.2:
                phone = f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
            birthday = ""
            if rng.random() < 0.6:
                y, m, d = rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28)
                birthday = rng.choice([f"{y}-{m:02d}-{d:02d}", f"{y}/{m}/{d}", f"{y}年{m}月{d}日"])
            writer.writerow([
                f"BENCH-{index}", family + given, {"female": "女", "male": "男"}.get(gender, ""),
                phone, email, birthday, company, title, province, city, district, street,
                postcode, ",".join(rng.sample(demo.TAGS, rng.randint(0, 2))),
                rng.choice(["门店", "展会", "Referral", "web_form", ""]),
                rng.choice(["潜在客户", "Lead", "active", "", ""]),
                rng.choice(demo.NOTES) if rng.random() < 0.1 else "",
            ])  # fmt: skip


# Runs a command and prints its peak resident memory in KiB. Linux carries a process's peak
# over to the children it forks and to what they exec, so the bench (a large process) measures
# through this small one: the command's figure is then its own.
PEAK_MEMORY_LAUNCHER = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def measure_imports(sizes, import_export_rows, env):
    """Import each file with `manage.py import_customers` (a process of its own, so that its
    peak memory is its own), revert it so the database keeps its size, then import the first
    rows of the largest with django-import-export."""

    from customers import imports
    from customers.models import Customer, CustomerImport

    existing = Customer.objects.count()
    results = {"existing": existing, "runs": [], "import_export": []}
    workdir = Path(tempfile.mkdtemp(prefix="cims-bench-import-"))
    try:
        for size in sizes:
            path = workdir / f"customers-{size}.csv"
            say(_("Writing a file of %(count)s customers…") % {"count": f"{size:,}"})
            write_import_file(path, size, existing)
            say(_("Importing %(count)s customers…") % {"count": f"{size:,}"})
            command = [PYTHON, "manage.py", "import_customers", str(path), "--as", "manager"]
            started = time.perf_counter()
            launched = subprocess.run(
                [PYTHON, "-c", PEAK_MEMORY_LAUNCHER, *command], cwd=BASE_DIR,
                env={**os.environ, **env}, check=False, capture_output=True, text=True,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            rss = int(launched.stdout.split()[-1]) / 1024
            job = CustomerImport.objects.order_by("-created_at").first()
            if job is None or job.state != CustomerImport.State.DONE:
                raise SystemExit(_("The import did not finish: %(error)s") % {"error": job.error})
            started = time.perf_counter()
            imports.revert(job, user=job.user)
            revert_seconds = time.perf_counter() - started
            _vacuum_customers()
            results["runs"].append(
                {
                    "rows": size,
                    "bytes": path.stat().st_size,
                    "seconds": seconds,
                    "rss_mb": rss,
                    "created": job.created,
                    "skipped": job.skipped,
                    "failed": job.failed,
                    "revert_seconds": revert_seconds,
                }
            )
        if import_export_rows:
            path = workdir / f"customers-{sizes[0]}.csv"
            for tuned in (False, True):
                results["import_export"].append(
                    _import_export(path, import_export_rows, tuned=tuned)
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _vacuum_customers():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) customers_customer")


# Columns django-import-export can store as they are; it has no reader for the others
# (Chinese choice labels, dates in three forms), so they are left out of its run.
IMPORT_EXPORT_COLUMNS = {
    "客户编号": "external_id", "姓名": "display_name", "手机": "phone", "邮箱": "email",
    "公司": "company", "职位": "job_title", "省份": "province", "城市": "city",
    "区": "district", "地址": "street", "邮编": "postcode", "备注": "notes",
}  # fmt: skip


def _import_export(path, count, *, tuned):
    """Rows per second of django-import-export on the first `count` rows of the file."""
    import csv
    import itertools

    import tablib
    from import_export import resources

    from customers.models import Customer

    class Meta:
        model = Customer
        fields = tuple(IMPORT_EXPORT_COLUMNS.values())
        import_id_fields = ("external_id",)
        if tuned:
            use_bulk, batch_size, skip_diff, skip_unchanged = True, 1000, True, True
            force_init_instance = True

    resource = type("CustomerResource", (resources.ModelResource,), {"Meta": Meta})()
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        keep = [i for i, name in enumerate(header) if name in IMPORT_EXPORT_COLUMNS]
        dataset = tablib.Dataset(headers=[IMPORT_EXPORT_COLUMNS[header[i]] for i in keep])
        for row in itertools.islice(reader, count):
            dataset.append([row[i] for i in keep])
    label = "tuned" if tuned else "defaults"
    say(_("django-import-export (%(how)s) on %(count)s rows…") % {"how": label, "count": count})
    started = time.perf_counter()
    result = resource.import_data(dataset, dry_run=False, raise_errors=False)
    seconds = time.perf_counter() - started
    Customer.objects.filter(external_id__startswith="BENCH-").delete()
    _vacuum_customers()
    return {
        "how": label,
        "rows": count,
        "seconds": seconds,
        "errors": len(result.row_errors()) + len(result.invalid_rows),
    }


def render_import_section(results, machine):
    lines = [
        IMPORT_SECTION,
        "",
        f"Measured {machine['date']} on a database of {results['existing']:,} customers with all "
        f"its indexes ({machine['cores']} cores, Python speed {machine['python_speed_ms']} ms, "
        f"load average {_load(machine['load_before'])} before). Each file is imported with "
        "`manage.py import_customers` (read, validated, normalised, matched, encrypted and "
        "written; about 3 % of the rows are customers already known and are skipped, 1 % have "
        "a bad phone or email), timed from the command's start to its end, then reverted.",
        "",
        "| Rows | File | Seconds | Rows/s | Peak memory (RSS) | Created | Skipped | Failed "
        "| Revert s | Goal | |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for run in results["runs"]:
        rate = run["rows"] / run["seconds"]
        lines.append(
            f"| {run['rows']:,} | {run['bytes'] / 1024**2:.0f} MB | {run['seconds']:.1f} | "
            f"{rate:,.0f} | {run['rss_mb']:.0f} MB | {run['created']:,} | {run['skipped']:,} | "
            f"{run['failed']:,} | {run['revert_seconds']:.1f} | ≥ {IMPORT_GOAL:,}/s | "
            f"{_verdict(rate >= IMPORT_GOAL)} |"
        )
    if results["import_export"]:
        lines += [
            "",
            "### django-import-export on the same file, for comparison",
            "",
            "Its `ModelResource` on the columns it can store as they are (it has no reader for "
            "Chinese choice labels or dates in three forms), matching on the external ID, "
            "through `Customer.save()` (defaults) or `bulk_create` (tuned: `use_bulk`, "
            "`batch_size=1000`, `skip_diff`, `skip_unchanged`, `force_init_instance`); search "
            "columns are not filled by the tuned run.",
            "",
            "| Settings | Rows | Seconds | Rows/s | Row errors |",
            "|---|--:|--:|--:|--:|",
        ]
        for run in results["import_export"]:
            lines.append(
                f"| {run['how']} | {run['rows']:,} | {run['seconds']:.1f} | "
                f"{run['rows'] / run['seconds']:,.0f} | {run['errors']:,} |"
            )
    lines += [
        "",
        "```sh",
        "BENCH_IMPORT_ROWS=100000 make bench   # only the 100,000-row file",
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
