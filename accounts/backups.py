"""Encrypted backups of the database and stored files, their destinations, retention and restore.

A backup is one container (accounts/backup_container.py) holding, as parts:

- `database.dump`: pg_dump's custom format of the whole database;
- `files/<path>`: every file under MEDIA_ROOT (generated reports, uploads);
- `manifest.json`, last: times, sizes and SHA-256 of every part, each table's row count and
  checksum and the audit trail's head, all taken in the snapshot pg_dump dumps.

The manifest is inside the encrypted, authenticated stream, so it cannot be changed or swapped
without the private key being needed to notice nothing. Restoring reads the whole backup once to
check every chunk and every part against the manifest before it touches any database, then a
second time to restore, and finally compares the restored tables with the manifest.
"""

import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.utils import ConnectionDoesNotExist, load_backend
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import sql

from accounts import audit
from accounts import backup_container as container
from accounts.models import Backup
from accounts.signals import database_restored

logger = logging.getLogger(__name__)

DUMP_PART = "database.dump"
MANIFEST_PART = "manifest.json"
FILES_PREFIX = "files/"
SUFFIX = ".cimsbak"
NAME_PATTERN = re.compile(r"^cims-(\d{8}T\d{6}Z)-[0-9a-f]{8}\.cimsbak$")
READ_SIZE = 256 * 1024
# How often a running backup writes its progress to its row.
PROGRESS_SECONDS = 2


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why, for an operator."""


# Keys and PostgreSQL programs -----------------------------------------------------------------


def public_key():
    path = settings.BACKUP_PUBLIC_KEY_FILE
    if not path:
        raise BackupError(_("BACKUP_PUBLIC_KEY_FILE is not set: backups cannot be encrypted."))
    try:
        return container.load_public_key(path)
    except (OSError, ValueError) as error:
        message = _("Cannot read the backup public key: %(error)s") % {"error": error}
        raise BackupError(message) from None


def private_key(path, password=None):
    try:
        return container.load_private_key(path, password)
    except (OSError, ValueError) as error:
        message = _("Cannot read the private key: %(error)s") % {"error": error}
        raise BackupError(message) from None


def pg_program(name):
    directory = settings.PG_BIN_DIR
    program = str(Path(directory) / name) if directory else shutil.which(name)
    if not program or not os.access(program, os.X_OK):
        raise BackupError(
            _("%(program)s not found (PG_BIN_DIR is %(dir)s).")
            % {"program": name, "dir": directory or "-"}
        )
    return program


def _program_major(program):
    output = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"(\d+)(?:\.\d+)?", output.stdout)
    return int(match.group(1))


def check_program(name, server_version_num):
    """The program's path, if its major version can work with the server's."""
    program = pg_program(name)
    client, server = _program_major(program), server_version_num // 10000
    # pg_dump refuses a newer server; a newer pg_restore reads older archives, an older one
    # does not read newer archives. Equal majors are what docs/operations.md asks for.
    if client < server:
        raise BackupError(
            _(
                "%(program)s is version %(client)s but the server is PostgreSQL %(server)s: set "
                "PG_BIN_DIR to the bin directory of PostgreSQL %(server)s."
            )
            % {"program": program, "client": client, "server": server}
        )
    return program


# Connections ----------------------------------------------------------------------------------


def connection_params(alias=DEFAULT_DB_ALIAS, dbname=None):
    """libpq keywords of a configured database, optionally for another database on its server."""
    db = connections[alias].settings_dict
    params = {
        "dbname": dbname or db["NAME"],
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
    }
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        if value := db.get("OPTIONS", {}).get(key):
            params[key] = value
    return {key: value for key, value in params.items() if value is not None}


def _libpq_environment(params):
    """The environment for pg_dump / pg_restore: the password never appears on a command line."""
    names = {
        "dbname": "PGDATABASE",
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
        "sslcert": "PGSSLCERT",
        "sslkey": "PGSSLKEY",
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environment.update({names[key]: value for key, value in params.items()})
    return environment


def _connect(params, **kwargs):
    return psycopg.connect(**params, application_name="cims-backup", **kwargs)


# Table checksums ------------------------------------------------------------------------------

TABLES_SQL = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""


def table_checksums(cursor):
    """{table: {"rows": n, "checksum": s}} of every table, read by `cursor`'s transaction.

    The checksum is the sum of the first 64 bits of each row's MD5 (of its text form): the same
    rows give the same sum in any physical order, in one pass and constant memory. Times are
    rendered in UTC so that the session's time zone cannot change a row's text.
    """
    cursor.execute("SET LOCAL TIME ZONE 'UTC'")
    cursor.execute("SET LOCAL extra_float_digits = 3")
    cursor.execute(TABLES_SQL)
    tables = [row[0] for row in cursor.fetchall()]
    result = {}
    for table in tables:
        cursor.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint),"
                " 0)::text FROM {} AS t"
            ).format(sql.SQL(table))
        )
        rows, checksum = cursor.fetchone()
        result[table] = {"rows": rows, "checksum": checksum}
    return result


def _audit_head(cursor):
    table = sql.Identifier(audit.AuditEntry._meta.db_table)
    cursor.execute(sql.SQL("SELECT seq, hash FROM {} ORDER BY seq DESC LIMIT 1").format(table))
    row = cursor.fetchone()
    return {"seq": row[0], "hash": row[1]} if row else {"seq": 0, "hash": audit.GENESIS_HASH}


# Destinations ---------------------------------------------------------------------------------


@dataclass
class StoredBackup:
    name: str
    size: int
    made_at: datetime.datetime


def made_at(name):
    match = NAME_PATTERN.match(name)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


class LocalDestination:
    def __init__(self, directory):
        self.directory = Path(directory)

    def __str__(self):
        return str(self.directory)

    def store(self, path, name):
        self.directory.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.directory / name)

    def fetch(self, name, path):
        shutil.copyfile(self.directory / name, path)

    def local_path(self, name):
        return self.directory / name

    def list(self):
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            if (moment := made_at(entry.name)) and entry.is_file():
                found.append(StoredBackup(entry.name, entry.stat().st_size, moment))
        return sorted(found, key=lambda stored: stored.made_at)

    def delete(self, name):
        (self.directory / name).unlink(missing_ok=True)


class S3Destination:
    """An S3-compatible bucket; objects are uploaded in parts, so memory stays flat."""

    def __init__(self, bucket, *, prefix="", endpoint_url=None, region=None):
        import boto3

        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def __str__(self):
        return f"s3://{self.bucket}/{self.prefix}"

    def store(self, path, name):
        self.client.upload_file(str(path), self.bucket, self.prefix + name)
        Path(path).unlink()

    def fetch(self, name, path):
        self.client.download_file(self.bucket, self.prefix + name, str(path))

    def list(self):
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if moment := made_at(name):
                    found.append(StoredBackup(name, item["Size"], moment))
        return sorted(found, key=lambda stored: stored.made_at)

    def delete(self, name):
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)


def destination():
    if settings.BACKUP_S3_BUCKET:
        return S3Destination(
            settings.BACKUP_S3_BUCKET,
            prefix=settings.BACKUP_S3_PREFIX,
            endpoint_url=settings.BACKUP_S3_ENDPOINT_URL,
            region=settings.BACKUP_S3_REGION,
        )
    return LocalDestination(settings.BACKUP_DIR)


# Making a backup ------------------------------------------------------------------------------


class _Progress:
    def __init__(self, backup):
        self.backup, self.done, self.saved_at = backup, 0, time.monotonic()

    def stage(self, stage):
        self.backup.stage = stage
        self.save(force=True)

    def add(self, count):
        self.done += count
        self.save()

    def save(self, force=False):
        if force or time.monotonic() - self.saved_at >= PROGRESS_SECONDS:
            self.backup.bytes_done = self.done
            Backup.objects.filter(pk=self.backup.pk).update(
                stage=self.backup.stage, bytes_done=self.done
            )
            self.saved_at = time.monotonic()


def fail_interrupted(*, older_than=None):
    """Mark backups left unfinished by a worker that stopped as failed, so that they neither
    block new ones nor hide the failure. A backup untouched for BACKUP_STALLED_HOURS is one."""
    older_than = older_than or datetime.timedelta(hours=settings.BACKUP_STALLED_HOURS)
    stalled = Backup.objects.unfinished().filter(created_at__lt=timezone.now() - older_than)
    return stalled.update(
        status=Backup.Status.FAILED,
        finished_at=timezone.now(),
        error=_("Interrupted: the worker stopped before the backup finished."),
    )


def create_backup(*, trigger, requested_by=None):
    """A new queued Backup row; `run_backup` makes it."""
    return Backup.objects.create(trigger=trigger, requested_by=requested_by)


def run_backup(backup, *, to=None):
    """Make `backup` (a Backup row) and store it; on failure mark it failed and raise BackupError.

    Every outcome is recorded in the audit trail.
    """
    to = to or destination()
    backup.status, backup.started_at, backup.error = Backup.Status.RUNNING, timezone.now(), ""
    backup.save(update_fields=["status", "started_at", "error"])
    try:
        _make(backup, to)
    except DatabaseError:
        # This application's own database failed under the backup's bookkeeping: nothing can
        # be recorded now; the task retries (and the backup starts again).
        raise
    except Exception as error:
        message = str(error)
        if not isinstance(error, BackupError):
            message = f"{type(error).__name__}: {message}"
        backup.status, backup.error = Backup.Status.FAILED, message
        backup.finished_at = timezone.now()
        backup.save()
        audit.record(
            audit.Action.BACKUP_FAILED,
            target=backup,
            actor=backup.requested_by,
            data={"error": message[:500]},
        )
        logger.error("Backup %s failed: %s", backup.pk, message)
        if isinstance(error, BackupError):
            raise
        raise BackupError(message) from error
    backup.status, backup.finished_at = Backup.Status.SUCCEEDED, timezone.now()
    backup.stage = Backup.Stage.DONE
    backup.save()
    audit.record(
        audit.Action.BACKUP_CREATE,
        target=backup,
        actor=backup.requested_by,
        data={"name": backup.name, "size": backup.size, "key_id": backup.key_id[:16]},
    )
    return backup


def _make(backup, to):
    key = public_key()
    created = backup.started_at.astimezone(datetime.UTC)
    backup.name = f"cims-{created:%Y%m%dT%H%M%SZ}-{backup.pk.hex[:8]}{SUFFIX}"
    backup.key_id = container.key_id(key)
    backup.destination = str(to)
    progress = _Progress(backup)
    work_dir = Path(settings.BACKUP_DIR)
    work_dir.mkdir(parents=True, exist_ok=True)
    partial = work_dir / f".{backup.name}.partial"
    try:
        # Encrypted, yet readable by the application's user only, like uploads.
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            writer = container.ContainerWriter(
                out, key, backup_id=backup.pk, created_at=created.isoformat()
            )
            archive = container.ArchiveWriter(writer)
            manifest = _write_parts(archive, backup, progress)
            manifest.update(
                format=container.FORMAT_VERSION,
                backup_id=str(backup.pk),
                created_at=created.isoformat(),
                finished_at=timezone.now().astimezone(datetime.UTC).isoformat(),
                key_id=backup.key_id,
            )
            archive.begin(MANIFEST_PART)
            archive.write(json.dumps(manifest, sort_keys=True, indent=1).encode())
            archive.end()
            archive.close()
            out.flush()
            os.fsync(out.fileno())
        backup.size = partial.stat().st_size
        backup.manifest = manifest
        progress.stage(Backup.Stage.STORING)
        to.store(partial, backup.name)
    finally:
        partial.unlink(missing_ok=True)


def _write_parts(archive, backup, progress):
    params = connection_params()
    # Autocommit, so that the BEGIN below starts the transaction (psycopg would otherwise have
    # begun one at its default isolation level already).
    with _connect(params, autocommit=True) as conn:
        # One snapshot for the dump and for the counts: the manifest describes exactly the
        # rows that were dumped, however busy the database is meanwhile. It stays valid while
        # this transaction is open.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        server_version = conn.info.server_version
        pg_dump = check_program("pg_dump", server_version)
        progress.stage(Backup.Stage.DATABASE)
        # The counts are read on a second connection while pg_dump runs: the server counts
        # while pg_dump compresses.
        counter = _SnapshotCounter(params, snapshot)
        counter.start()
        try:
            dump = _dump_database(archive, pg_dump, params, snapshot, progress)
        finally:
            counter.join()
            conn.execute("ROLLBACK")
    if counter.error is not None:
        raise BackupError(
            _("Counting the tables failed: %(error)s") % {"error": counter.error}
        ) from counter.error
    progress.stage(Backup.Stage.FILES)
    files = _write_files(archive, Path(settings.MEDIA_ROOT), progress)
    return {
        "database": {
            "name": params["dbname"],
            "server_version": server_version,
            "pg_dump_version": _program_major(pg_dump),
            **dump,
            "tables": counter.tables,
            "audit_head": counter.head,
        },
        "files": files,
    }


class _SnapshotCounter(threading.Thread):
    """Reads every table's count and checksum, and the audit head, in an exported snapshot."""

    def __init__(self, params, snapshot):
        super().__init__(name="backup-counter", daemon=True)
        self.params, self.snapshot = params, snapshot
        self.tables = self.head = self.error = None

    def run(self):
        try:
            with _connect(self.params, autocommit=True) as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot))
                )
                with conn.cursor() as cursor:
                    self.tables = table_checksums(cursor)
                    self.head = _audit_head(cursor)
                conn.execute("ROLLBACK")
        except Exception as error:  # raised by the backup's thread after join()
            self.error = error


def _dump_database(archive, pg_dump, params, snapshot, progress):
    command = [
        pg_dump,
        "--format=custom",
        f"--compress={settings.BACKUP_COMPRESSION_LEVEL}",
        f"--snapshot={snapshot}",
        "--no-password",
    ]
    digest, size = hashlib.sha256(), 0
    # stderr to a file: a pipe nobody reads while stdout is streamed could fill and stall it.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, env=_libpq_environment(params)
        )
        archive.begin(DUMP_PART)
        try:
            while data := process.stdout.read(READ_SIZE):
                archive.write(data)
                digest.update(data)
                size += len(data)
                progress.add(len(data))
        finally:
            process.stdout.close()
            returncode = process.wait()
        archive.end()
        if returncode != 0:
            errors.seek(0)
            raise BackupError(
                _("pg_dump failed: %(error)s")
                % {"error": errors.read().decode(errors="replace").strip()[-2000:]}
            )
    return {"size": size, "sha256": digest.hexdigest()}


def _write_files(archive, root, progress):
    files = []
    if not root.is_dir():
        return files
    for path in sorted(root.rglob("*")):
        # Symbolic links could point anywhere on the server: only regular files are kept.
        if path.is_symlink() or not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        digest, size = hashlib.sha256(), 0
        archive.begin(FILES_PREFIX + relative)
        with open(path, "rb") as file:
            while data := file.read(READ_SIZE):
                archive.write(data)
                digest.update(data)
                size += len(data)
                progress.add(len(data))
        archive.end()
        files.append({"path": relative, "size": size, "sha256": digest.hexdigest()})
    return files


# The page's summary ---------------------------------------------------------------------------


def destination_label():
    if settings.BACKUP_S3_BUCKET:
        return f"s3://{settings.BACKUP_S3_BUCKET}/{settings.BACKUP_S3_PREFIX}"
    return str(settings.BACKUP_DIR)


def configured_key_id():
    """The configured public key's id, or None when it cannot be read."""
    try:
        return container.key_id(public_key())
    except BackupError:
        return None


def warning():
    """What administrators must be told about backups, or "" when all is well: the latest one
    failed, none succeeded recently, or no key to encrypt them with."""
    if configured_key_id() is None:
        return _("No backup public key can be read (BACKUP_PUBLIC_KEY_FILE): backups fail.")
    latest = (
        Backup.objects.exclude(status__in=[Backup.Status.QUEUED, Backup.Status.RUNNING])
        .exclude(status=Backup.Status.DELETED)
        .order_by("-created_at")
        .first()
    )
    if latest is not None and latest.status == Backup.Status.FAILED:
        return _("The latest backup failed: %(error)s") % {"error": latest.error}
    since = timezone.now() - datetime.timedelta(hours=settings.BACKUP_MAX_AGE_HOURS)
    if not Backup.objects.filter(status=Backup.Status.SUCCEEDED, finished_at__gte=since).exists():
        return _("No backup has succeeded in the last %(hours)s hours.") % {
            "hours": settings.BACKUP_MAX_AGE_HOURS
        }
    return ""


# Retention ------------------------------------------------------------------------------------


def backups_to_keep(stored, *, daily, weekly, monthly, now=None):
    """Names of the backups a daily/weekly/monthly rotation keeps: the newest of each of the
    last `daily` days, `weekly` ISO weeks and `monthly` months (UTC) that have one."""
    keep = set()
    newest_first = sorted(stored, key=lambda item: item.made_at, reverse=True)
    for count, period in (
        (daily, lambda moment: moment.date()),
        (weekly, lambda moment: moment.isocalendar()[:2]),
        (monthly, lambda moment: (moment.year, moment.month)),
    ):
        periods = []
        for item in newest_first:
            key = period(item.made_at)
            if key in periods:
                continue
            if len(periods) == count:
                break
            periods.append(key)
            keep.add(item.name)
    return keep


def prune(*, to=None):
    """Delete the backups the retention settings do not keep; return their names."""
    to = to or destination()
    stored = to.list()
    keep = backups_to_keep(
        stored,
        daily=settings.BACKUP_KEEP_DAILY,
        weekly=settings.BACKUP_KEEP_WEEKLY,
        monthly=settings.BACKUP_KEEP_MONTHLY,
    )
    deleted = [item.name for item in stored if item.name not in keep]
    for name in deleted:
        to.delete(name)
    if deleted:
        Backup.objects.filter(name__in=deleted, status=Backup.Status.SUCCEEDED).update(
            status=Backup.Status.DELETED
        )
        audit.record(audit.Action.BACKUP_PRUNE, data={"deleted": deleted, "kept": sorted(keep)})
    return deleted


# Restoring ------------------------------------------------------------------------------------


@dataclass
class Checked:
    """What a full pass over a backup found: its header, manifest and parts."""

    header: dict
    manifest: dict
    parts: dict = field(default_factory=dict)


def check_backup(path, key):
    """Read the whole backup, checking every chunk and every part against the manifest.

    Raises BackupError with what is wrong; writes nothing anywhere.
    """
    parts = {}
    manifest_bytes = None
    try:
        with open(path, "rb") as source:
            reader = container.ContainerReader(source, key)
            for name, blocks in container.read_parts(reader):
                if manifest_bytes is not None:
                    raise BackupError(_("The backup has parts after its manifest."))
                if name == MANIFEST_PART:
                    manifest_bytes = b"".join(blocks)
                    continue
                digest, size = hashlib.sha256(), 0
                for data in blocks:
                    digest.update(data)
                    size += len(data)
                parts[name] = {"size": size, "sha256": digest.hexdigest()}
    except container.ContainerError as error:
        raise BackupError(str(error)) from None
    except OSError as error:
        raise BackupError(_("Cannot read the backup: %(error)s") % {"error": error}) from None
    if manifest_bytes is None:
        raise BackupError(_("The backup has no manifest."))
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise BackupError(_("The backup's manifest cannot be read.")) from None
    if manifest.get("backup_id") != reader.header["backup_id"]:
        raise BackupError(_("The manifest belongs to another backup."))
    expected = {DUMP_PART: manifest["database"]}
    expected.update({FILES_PREFIX + item["path"]: item for item in manifest["files"]})
    if set(expected) != set(parts):
        raise BackupError(_("The backup's parts do not match its manifest."))
    for name, found in parts.items():
        if (found["size"], found["sha256"]) != (expected[name]["size"], expected[name]["sha256"]):
            raise BackupError(_("%(part)s does not match the manifest.") % {"part": name})
    return Checked(header=reader.header, manifest=manifest, parts=parts)


def _database_exists(admin, name):
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()


def _database_is_empty(params):
    with _connect(params) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'"
        ).fetchone()[0]
    return count == 0


@dataclass
class Restored:
    database: str
    alias: str
    tables: int
    rows: int
    files: int
    audit_entries: int
    created: bool


def restore_backup(path, key, *, database=None, media_root=None, restore_files=True):
    """Restore the backup at `path` into `database` (default: the configured one), which must
    be empty or not exist yet (it is then created), and `media_root`'s missing files.

    Checks the whole backup first; then restores in one transaction, compares every table with
    the manifest, verifies the audit trail, and sends `database_restored`. On any fault raises
    BackupError, and a database it created is dropped again.
    """
    checked = check_backup(path, key)
    target = database or settings.DATABASES[DEFAULT_DB_ALIAS]["NAME"]
    media_root = Path(media_root or settings.MEDIA_ROOT)
    if restore_files:
        _check_file_conflicts(checked.manifest["files"], media_root)
    params = connection_params(dbname=target)
    admin_params = connection_params(dbname="postgres")
    created = False
    with _connect(admin_params, autocommit=True) as admin:
        pg_restore = check_program("pg_restore", admin.info.server_version)
        if _database_exists(admin, target):
            if not _database_is_empty(params):
                raise BackupError(
                    _("Database %(name)s is not empty: restore into an empty or a new database.")
                    % {"name": target}
                )
        else:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                    sql.Identifier(target)
                )
            )
            created = True
    alias = f"restored_{target}"
    try:
        files = _restore_parts(path, key, pg_restore, params, media_root, restore_files)
        _register_alias(alias, target)
        result = verify_restored(alias, checked.manifest)
        database_restored.send(sender=Backup, using=alias)
        audit.record(
            audit.Action.RESTORE,
            data={
                "backup_id": checked.manifest["backup_id"],
                "backup_created_at": checked.manifest["created_at"],
                "database": target,
            },
            using=alias,
        )
    except BaseException:
        _unregister_alias(alias)
        if created:
            _drop_database(target)
        raise
    _unregister_alias(alias)
    return Restored(
        database=target,
        alias=alias,
        tables=len(checked.manifest["database"]["tables"]),
        rows=sum(t["rows"] for t in checked.manifest["database"]["tables"].values()),
        files=files,
        audit_entries=result.entries,
        created=created,
    )


def _check_file_conflicts(files, media_root):
    for item in files:
        path = media_root / item["path"]
        if path.exists() and _sha256_of(path) != item["sha256"]:
            raise BackupError(
                _("%(path)s exists with other content: move it away or restore without files.")
                % {"path": path}
            )


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while data := file.read(READ_SIZE):
            digest.update(data)
    return digest.hexdigest()


def _restore_parts(path, key, pg_restore, params, media_root, restore_files):
    files = 0
    with open(path, "rb") as source:
        reader = container.ContainerReader(source, key)
        try:
            for name, blocks in container.read_parts(reader):
                if name == DUMP_PART:
                    _pg_restore(pg_restore, params, blocks)
                elif name.startswith(FILES_PREFIX) and restore_files:
                    files += _restore_file(media_root, name[len(FILES_PREFIX) :], blocks)
                else:
                    for _data in blocks:
                        pass
        except container.ContainerError as error:
            raise BackupError(str(error)) from None
    return files


def _pg_restore(pg_restore, params, blocks):
    command = [
        pg_restore,
        "--dbname",
        params["dbname"],
        "--no-owner",
        "--no-acl",
        "--exit-on-error",
        "--single-transaction",
        "--no-password",
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stderr=errors, env=_libpq_environment(params)
        )
        try:
            for data in blocks:
                process.stdin.write(data)
        except BrokenPipeError:
            # pg_restore stopped reading: its exit status and messages say why.
            for _data in blocks:
                pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            returncode = process.wait()
        if returncode != 0:
            errors.seek(0)
            raise BackupError(
                _("pg_restore failed: %(error)s")
                % {"error": errors.read().decode(errors="replace").strip()[-2000:]}
            )


def _restore_file(media_root, relative, blocks):
    target = (media_root / relative).resolve()
    if media_root.resolve() not in target.parents:
        raise BackupError(_("The backup names a file outside the media directory."))
    if target.exists():
        for _data in blocks:
            pass
        return 0
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(f".{target.name}.restoring")
    with open(partial, "wb") as file:
        for data in blocks:
            file.write(data)
    os.chmod(partial, 0o600)
    os.replace(partial, target)
    return 1


def _register_alias(alias, name):
    """A connection alias for the database `name` on the default database's server.

    Made as Django makes a connection, but not added to settings.DATABASES: it lives only as
    long as the restore, in this thread.
    """
    settings_dict = {**connections[DEFAULT_DB_ALIAS].settings_dict, "NAME": name}
    settings_dict["CONN_MAX_AGE"] = 0
    backend = load_backend(settings_dict["ENGINE"])
    connections[alias] = backend.DatabaseWrapper(settings_dict, alias)


def _unregister_alias(alias):
    try:
        wrapper = connections[alias]
    except ConnectionDoesNotExist:
        return
    with contextlib.suppress(Exception):
        wrapper.close()
    del connections[alias]


def _drop_database(name):
    with _connect(connection_params(dbname="postgres"), autocommit=True) as admin:
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        admin.execute(statement.format(sql.Identifier(name)))


def verify_restored(alias, manifest):
    """Compare the database behind `alias` with the manifest and verify its audit trail."""
    params = connection_params(alias)
    with _connect(params, autocommit=True) as conn, conn.cursor() as cursor:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        tables = table_checksums(cursor)
        conn.execute("ROLLBACK")
    expected = manifest["database"]["tables"]
    for table in sorted(set(expected) | set(tables)):
        if expected.get(table) != tables.get(table):
            raise BackupError(
                _("Table %(table)s differs from the backup's manifest after the restore.")
                % {"table": table}
            )
    try:
        result = audit.verify_trail(using=alias, with_checkpoints=False)
    except audit.ChainBroken as broken:
        raise BackupError(
            _("The restored audit trail is broken at entry %(seq)s: %(message)s")
            % {"seq": broken.seq, "message": broken.message}
        ) from None
    head = manifest["database"]["audit_head"]
    if (result.head_seq, result.head_hash) != (head["seq"], head["hash"]):
        raise BackupError(_("The restored audit trail does not end where the backup's did."))
    _check_signed_checkpoints(alias, result.head_seq)
    return result


def _check_signed_checkpoints(alias, head_seq):
    """The restored entries that signed checkpoints vouch for must still have the signed hash.

    Checkpoints signed after the backup name entries it does not have, and are not checked.
    """
    try:
        checkpoints = [cp for cp in audit.read_checkpoints() if cp.seq <= head_seq]
    except audit.ChainBroken as broken:
        raise BackupError(broken.message) from None
    if not checkpoints:
        return
    hashes = dict(
        audit.AuditEntry.objects.using(alias)
        .filter(seq__in=[cp.seq for cp in checkpoints])
        .values_list("seq", "hash")
    )
    for checkpoint in checkpoints:
        if hashes.get(checkpoint.seq) != checkpoint.hash:
            raise BackupError(
                _("Entry %(seq)s of the restored audit trail does not match %(file)s.")
                % {"seq": checkpoint.seq, "file": checkpoint.path.name}
            )


# Drills ---------------------------------------------------------------------------------------


def fetch(name_or_path, directory, *, to=None):
    """A local path to the backup: the path itself, or a copy fetched from the destination."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    to = to or destination()
    if isinstance(to, LocalDestination) and to.local_path(path.name).is_file():
        return to.local_path(path.name)
    local = Path(directory) / Path(name_or_path).name
    try:
        to.fetch(Path(name_or_path).name, local)
    except Exception as error:
        raise BackupError(
            _("No backup %(name)s here or in %(destination)s: %(error)s")
            % {"name": name_or_path, "destination": to, "error": error}
        ) from None
    return local


def drill(backup, key, *, to=None):
    """Restore `backup` into a scratch database, compare it with the manifest, drop it."""
    scratch = f"{settings.DATABASES[DEFAULT_DB_ALIAS]['NAME']}_drill_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(dir=settings.BACKUP_DIR) as directory:
        path = fetch(backup.name, directory, to=to)
        try:
            restored = restore_backup(path, key, database=scratch, restore_files=False)
        finally:
            _drop_database(scratch)
    audit.record(
        audit.Action.BACKUP_DRILL,
        target=backup,
        data={"tables": restored.tables, "rows": restored.rows},
    )
    return restored


def check_backup_keys(app_configs=None, **kwargs):
    """Deploy check: backups can be encrypted, and the private key is not on the server."""
    from django.core.checks import Error, Warning

    problems = []
    if configured_key_id() is None:
        problems.append(
            Error(
                "No backup public key: set BACKUP_PUBLIC_KEY_FILE to an RSA-3072 public key (PEM).",
                hint="openssl pkey -in backup-private.pem -pubout -out backup-public.pem",
                id="accounts.E102",
            )
        )
    private = settings.BACKUP_PRIVATE_KEY_FILE
    if private and Path(private).exists():
        problems.append(
            Warning(
                "The backup private key is on this server (BACKUP_PRIVATE_KEY_FILE): anyone "
                "who takes the server can read every backup.",
                hint="Keep it offline and run restore drills where it is kept.",
                id="accounts.W103",
            )
        )
    return problems
