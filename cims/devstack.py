"""`make run`, `make test` and `make stop`: the development stack in one process.

    python -m cims.devstack run     # embedded services, migrate, demo data, web + worker + beat
    python -m cims.devstack test …  # embedded services, then pytest with the given arguments
    python -m cims.devstack stop    # stop the embedded PostgreSQL and Redis

With DATABASE_URL / REDIS_URL set, those servers are used and nothing is started for them.
Ctrl-C stops every process `run` started, and the embedded servers if it started them.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cims import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def manage(*args, check=True):
    return subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, check=check)


def say(text):
    print(f"\033[1m{text}\033[0m", flush=True)


def run():
    port = os.environ.get("PORT", "8000")
    started = embedded.start_missing()
    children = []

    def stop(*_args):
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        embedded.stop(started)
        say("Stopped.")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # A shell starts background jobs with Ctrl-C ignored; `run` must still stop on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        create_backup_keys()
        manage("migrate", "--noinput")
        manage("seed_demo")
        say("Starting the web server, a Celery worker and Celery beat…")
        children.append(
            subprocess.Popen([PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}"], cwd=BASE_DIR)
        )
        celery = [str(BIN / "celery"), "-A", "cims"]
        children.append(
            subprocess.Popen(
                [*celery, "worker", "--loglevel=INFO", "--concurrency=2"], cwd=BASE_DIR
            )
        )
        children.append(subprocess.Popen([*celery, "beat", "--loglevel=INFO"], cwd=BASE_DIR))
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", children)
        password = os.environ.get("DEMO_PASSWORD", "cims-demo-2026")
        say(f"\nCIMS is running at http://127.0.0.1:{port}")
        say(f"Sign in as staff, manager, admin, staff2, viewer or auditor, password {password}")
        say("(admin and manager set up an authenticator app on their first sign-in)")
        say("Press Ctrl-C to stop.\n")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        say("A process stopped unexpectedly; stopping the rest.")
        return 1
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as error:
        return error.returncode or 1
    finally:
        stop()


def create_backup_keys():
    """A development key pair for backups under var/keys/, unless configured otherwise.

    Production makes its pair elsewhere and gives the server the public key only.
    """
    if os.environ.get("BACKUP_PUBLIC_KEY_FILE"):
        return
    from accounts.backup_container import create_key_pair

    keys = embedded.VAR_DIR / "keys"
    if create_key_pair(keys / "backup-private.pem", keys / "backup-public.pem"):
        say(f"Created a development backup key pair in {keys}/")


def wait_until_ready(url, processes, timeout=60):
    """Whether `url` answered 200 before one of `processes` ended or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def test(args):
    started = embedded.start_missing()
    try:
        manage("makemigrations", "--check", "--dry-run", "--verbosity", "0")
        return subprocess.run([PYTHON, "-m", "pytest", *args], cwd=BASE_DIR).returncode
    except subprocess.CalledProcessError:
        print("Models and migrations differ: run `manage.py makemigrations`.", file=sys.stderr)
        return 1
    finally:
        embedded.stop(started)


def main(argv):
    command, args = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "run":
        return run()
    if command == "test":
        return test(args)
    if command == "stop":
        embedded.stop(["postgres", "redis"])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
