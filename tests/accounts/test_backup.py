"""Backups on the real PostgreSQL: round trip, refusals before anything is written, versions."""

import base64
import json
import os
import uuid

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.utils import ConnectionDoesNotExist

from accounts import audit, backups
from accounts import backup_container as container
from accounts.models import Backup
from accounts.signals import database_restored
from customers.models import Customer

# The refusals are checked by their (English) messages.
pytestmark = pytest.mark.usefixtures("english")

CHUNK_RECORD = 5 + container.CHUNK_SIZE + container.TAG_BYTES


def _admin():
    return psycopg.connect(**backups.connection_params(dbname="postgres"), autocommit=True)


def database_exists(name):
    with _admin() as admin:
        return bool(
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        )


@pytest.fixture
def scratch_name():
    """A database name for a restore, dropped after the test whatever happened."""
    name = f"{connection.settings_dict['NAME']}_restore_{uuid.uuid4().hex[:8]}"
    yield name
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def seeded(transactional_db, make_customer, staff, settings):
    """Committed customers, audit entries and stored files, as pg_dump sees them."""
    for number in range(25):
        make_customer(
            f"客户{number}", phone=f"+86138001380{number:02d}", email=f"c{number}@example.com",
            owner=staff,
        )  # fmt: skip
    for number in range(5):
        audit.record(audit.Action.SETTINGS_CHANGE, data={"n": number, "text": "设置"})
    media = settings.MEDIA_ROOT
    (media / "reports").mkdir(parents=True)
    (media / "reports" / "季度报告.pdf").write_bytes(b"%PDF-1.7 " + os.urandom(2000))
    # Larger than three chunks, so that chunks can be reordered in the tests below.
    (media / "imports").mkdir()
    (media / "imports" / "customers.xlsx").write_bytes(os.urandom(3 * container.CHUNK_SIZE))
    return media


def make_backup():
    return backups.run_backup(backups.create_backup(trigger=Backup.Trigger.COMMAND))


def stored_path(backup, settings):
    return settings.BACKUP_DIR / backup.name


def checksums(dbname):
    with psycopg.connect(**backups.connection_params(dbname=dbname)) as conn:
        with conn.cursor() as cursor:
            return backups.table_checksums(cursor)


def test_backup_wipe_and_restore_gives_identical_tables_files_and_audit_trail(
    seeded, backup_settings, backup_keys, scratch_name
):
    settings = backup_settings
    backup = make_backup()
    path = stored_path(backup, settings)
    assert backup.status == Backup.Status.SUCCEEDED and path.stat().st_size == backup.size
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    before = checksums(connection.settings_dict["NAME"])
    manifest = backup.manifest
    assert manifest["key_id"] == backup.key_id == container.key_id(backups.public_key())
    assert manifest["database"]["tables"]["public.customers_customer"]["rows"] == 25
    # The backup's own row and audit entry were written after the snapshot; the rest matches.
    trail, moved = (
        "public.accounts_auditentry",
        {"public.accounts_auditentry", "public.accounts_backup"},
    )
    assert {t: v for t, v in before.items() if t not in moved} == {
        t: v for t, v in manifest["database"]["tables"].items() if t not in moved
    }
    assert {item["path"] for item in manifest["files"]} == {
        "reports/季度报告.pdf",
        "imports/customers.xlsx",
    }
    original_pdf = (seeded / "reports" / "季度报告.pdf").read_bytes()

    # Wipe the stored files; the restore brings them back into the empty media directory.
    for item in manifest["files"]:
        (seeded / item["path"]).unlink()
    received = []

    def receiver(sender, using, **kwargs):
        received.append((using, Customer.objects.using(using).count()))

    database_restored.connect(receiver, dispatch_uid="test-restore")
    try:
        call_command(
            "restore", str(path), private_key=str(backup_keys["private"]), database=scratch_name
        )
    finally:
        database_restored.disconnect(dispatch_uid="test-restore")

    assert received == [(f"restored_{scratch_name}", 25)]
    with pytest.raises(ConnectionDoesNotExist):
        connections[f"restored_{scratch_name}"]
    after = checksums(scratch_name)
    restored_trail = after.pop(trail)
    assert after == {t: v for t, v in manifest["database"]["tables"].items() if t != trail}
    # The restore itself is the one entry the restored trail has beyond the backup's.
    assert restored_trail["rows"] == manifest["database"]["tables"][trail]["rows"] + 1
    assert (seeded / "reports" / "季度报告.pdf").read_bytes() == original_pdf
    assert (seeded / "imports" / "customers.xlsx").stat().st_size == 3 * container.CHUNK_SIZE


def test_restored_database_reads_encrypted_fields_and_its_trail_verifies(
    seeded, backup_settings, backup_keys, scratch_name
):
    backup = make_backup()
    backups.restore_backup(
        stored_path(backup, backup_settings),
        backups.private_key(backup_keys["private"]),
        database=scratch_name,
        restore_files=False,
    )
    backups._register_alias("check", scratch_name)
    try:
        customer = Customer.objects.using("check").get(display_name="客户7")
        assert customer.phone == "+8613800138007"
        result = audit.verify_trail(using="check", with_checkpoints=False)
        last = audit.AuditEntry.objects.using("check").order_by("-seq").first()
    finally:
        backups._unregister_alias("check")
    assert last.action == audit.Action.RESTORE
    assert last.data["backup_id"] == str(backup.pk)
    assert result.entries == backup.manifest["database"]["audit_head"]["seq"] + 1


def test_restore_checks_checkpoints_signed_before_the_backup_and_skips_later_ones(
    seeded, backup_settings, backup_keys, scratch_name
):
    before = audit.write_checkpoint()
    backup = make_backup()
    audit.record(audit.Action.SETTINGS_CHANGE, data={"after": "backup"})
    after = audit.write_checkpoint()
    assert audit.read_checkpoints()[-1].path == after != before
    restored = backups.restore_backup(
        stored_path(backup, backup_settings),
        backups.private_key(backup_keys["private"]),
        database=scratch_name,
        restore_files=False,
    )
    assert restored.audit_entries == backup.manifest["database"]["audit_head"]["seq"]


def test_restore_refuses_a_trail_that_does_not_match_a_signed_checkpoint(
    seeded, backup_settings, backup_keys, scratch_name
):
    backup = make_backup()
    # A checkpoint signed for a different history of the same length: what a trail rewritten
    # before the backup was made looks like.
    head = backup.manifest["database"]["audit_head"]["seq"]
    key = audit.signing_key()
    payload = {
        "seq": head,
        "hash": "f" * 64,
        "entry_time": "2026-11-25T00:00:00.000000+00:00",
        "signed_at": "2026-11-25T00:00:00.000000+00:00",
        "key_id": audit.key_id(key.public_key()),
    }
    signature = base64.b64encode(key.sign(audit._signed_payload(payload))).decode()
    backup_settings.AUDIT_CHECKPOINT_DIR.mkdir(exist_ok=True)
    (backup_settings.AUDIT_CHECKPOINT_DIR / f"checkpoint-{head:012d}.json").write_text(
        json.dumps({**payload, "signature": signature})
    )
    with pytest.raises(backups.BackupError, match="does not match checkpoint-"):
        backups.restore_backup(
            stored_path(backup, backup_settings),
            backups.private_key(backup_keys["private"]),
            database=scratch_name,
            restore_files=False,
        )
    assert not database_exists(scratch_name)


def test_verify_only_checks_everything_and_writes_nothing(
    seeded, backup_settings, backup_keys, scratch_name, capsys
):
    backup = make_backup()
    call_command(
        "restore",
        str(stored_path(backup, backup_settings)),
        private_key=str(backup_keys["private"]),
        database=scratch_name,
        verify_only=True,
    )
    assert "is intact" in capsys.readouterr().out
    assert not database_exists(scratch_name)


def tampered(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 0x40
    return bytes(data)


def truncated(data):
    return data[: len(data) - 1000]


def cut_at_a_chunk(data):
    # Whole chunk records only: every chunk left authenticates, the last one is missing.
    header_end = 12 + int.from_bytes(data[8:12], "big")
    return data[: header_end + 2 * CHUNK_RECORD]


def reordered(data):
    header_end = 12 + int.from_bytes(data[8:12], "big")
    first = header_end + CHUNK_RECORD
    one, two = (
        data[first : first + CHUNK_RECORD],
        data[first + CHUNK_RECORD : first + 2 * CHUNK_RECORD],
    )
    return data[:first] + two + one + data[first + 2 * CHUNK_RECORD :]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (tampered, "does not authenticate"),
        (truncated, "truncated"),
        (cut_at_a_chunk, "truncated"),
        (reordered, "Chunk 2 of the backup is damaged, out of place"),
    ],
)
@pytest.mark.parametrize("verify_only", [False, True])
def test_damaged_backup_is_refused_and_no_database_is_created(
    seeded, backup_settings, backup_keys, scratch_name, tmp_path, damage, message, verify_only
):
    backup = make_backup()
    bad = tmp_path / "bad.cimsbak"
    bad.write_bytes(damage(stored_path(backup, backup_settings).read_bytes()))
    for item in backup.manifest["files"]:
        (seeded / item["path"]).unlink()
    with pytest.raises(CommandError, match=message):
        call_command(
            "restore",
            str(bad),
            private_key=str(backup_keys["private"]),
            database=scratch_name,
            verify_only=verify_only,
        )
    assert not database_exists(scratch_name)
    assert list(seeded.rglob("*.*")) == []


def test_backup_for_another_key_is_refused_and_an_empty_database_stays_empty(
    seeded, backup_settings, backup_keys, scratch_name
):
    backup = make_backup()
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{scratch_name}"')
    with pytest.raises(CommandError, match="encrypted for key"):
        call_command(
            "restore",
            str(stored_path(backup, backup_settings)),
            private_key=str(backup_keys["other"]),
            database=scratch_name,
        )
    assert checksums(scratch_name) == {}


def test_restore_into_a_database_with_tables_is_refused(seeded, backup_settings, backup_keys):
    backup = make_backup()
    with pytest.raises(CommandError, match="is not empty"):
        call_command(
            "restore",
            str(stored_path(backup, backup_settings)),
            private_key=str(backup_keys["private"]),
        )
    assert Customer.objects.count() == 25


def test_backup_without_a_public_key_fails_with_a_clear_error_and_an_audit_entry(
    transactional_db, backup_settings
):
    backup_settings.BACKUP_PUBLIC_KEY_FILE = str(backup_settings.BACKUP_DIR / "missing.pem")
    with pytest.raises(CommandError, match="Cannot read the backup public key"):
        call_command("backup")
    backup = Backup.objects.get()
    assert backup.status == Backup.Status.FAILED
    assert "missing.pem" in backup.error
    entry = audit.AuditEntry.objects.order_by("-seq").first()
    assert entry.action == audit.Action.BACKUP_FAILED and entry.object_id == str(backup.pk)


def test_backup_verify_restores_into_a_scratch_database_and_drops_it(
    seeded, backup_settings, capsys
):
    call_command("backup", verify=True)
    output = capsys.readouterr().out
    assert "Restore drill passed" in output
    with _admin() as admin:
        drills = admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s",
            [connection.settings_dict["NAME"] + "_drill_%"],
        ).fetchone()[0]
    assert drills == 0
    assert audit.AuditEntry.objects.filter(action=audit.Action.BACKUP_DRILL).count() == 1


def test_pg_dump_older_than_the_server_is_refused_with_the_setting_to_change(settings):
    settings.PG_BIN_DIR = ""
    major = backups._program_major(backups.pg_program("pg_dump"))
    with pytest.raises(backups.BackupError, match="set PG_BIN_DIR"):
        backups.check_program("pg_dump", (major + 3) * 10000)
    assert backups.check_program("pg_dump", major * 10000).endswith("pg_dump")


def test_embedded_server_uses_its_own_pg_dump():
    from cims import embedded

    program = embedded.bin_dir() / "pg_dump"
    assert backups._program_major(str(program)) >= 18


def test_a_private_key_kept_under_a_passphrase_restores_with_the_passphrase_file(
    seeded, backup_settings, backup_keys, tmp_path, capsys
):
    from cryptography.hazmat.primitives import serialization

    key = backups.private_key(backup_keys["private"])
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"plum blossom"),
        )
    )
    (tmp_path / "passphrase").write_text("plum blossom\n")
    path = str(stored_path(make_backup(), backup_settings))
    with pytest.raises(CommandError, match="private key is encrypted"):
        call_command("restore", path, private_key=str(locked), verify_only=True)
    call_command(
        "restore",
        path,
        private_key=str(locked),
        passphrase_file=str(tmp_path / "passphrase"),
        verify_only=True,
    )
    assert "is intact" in capsys.readouterr().out


def test_rows_committed_while_the_backup_runs_are_in_neither_dump_nor_manifest(
    seeded, backup_settings, backup_keys, scratch_name, monkeypatch
):
    # Once the snapshot is exported (the backup says it starts on the database), another
    # session commits a customer: the snapshot must hide it from the dump and the counts alike.
    original_stage = backups._Progress.stage

    def stage(progress, name):
        if name == Backup.Stage.DATABASE:
            with psycopg.connect(**backups.connection_params(), autocommit=True) as other:
                other.execute(
                    "UPDATE customers_customer SET company = 'changed meanwhile' "
                    "WHERE display_name = '客户3'"
                )
                other.execute("DELETE FROM customers_customer WHERE display_name = '客户4'")
        original_stage(progress, name)

    monkeypatch.setattr(backups._Progress, "stage", stage)
    backup = make_backup()
    live = checksums(connection.settings_dict["NAME"])["public.customers_customer"]
    manifest = backup.manifest["database"]["tables"]["public.customers_customer"]
    assert manifest["rows"] == 25 and live["rows"] == 24
    backups.restore_backup(
        stored_path(backup, backup_settings),
        backups.private_key(backup_keys["private"]),
        database=scratch_name,
        restore_files=False,
    )
    assert checksums(scratch_name)["public.customers_customer"] == manifest != live
