"""Where backups are kept: retention, and an S3-compatible bucket (moto's server, over HTTP)."""

import datetime
import socket
import uuid

import boto3
import pytest
from django.core.management import call_command

from accounts import audit, backups
from accounts.models import Backup

# The refusals are checked by their (English) messages.
pytestmark = pytest.mark.usefixtures("english")

UTC = datetime.UTC


def name_at(moment, tag="0"):
    return f"cims-{moment:%Y%m%dT%H%M%SZ}-{tag * 8}.cimsbak"


def stored(*moments):
    return [backups.StoredBackup(name_at(m), 1, m) for m in moments]


def test_rotation_keeps_newest_of_each_recent_day_week_and_month():
    # A backup at 01:30 every day of 2026 up to 25 November, and a second one on the last day.
    days = [
        datetime.datetime(2026, 1, 1, 1, 30, tzinfo=UTC) + datetime.timedelta(days=n)
        for n in range(329)
    ]
    extra = datetime.datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    keep = backups.backups_to_keep(stored(*days, extra), daily=3, weekly=2, monthly=3)
    expected = {
        extra,  # newest of 25 Nov (day, week 48 and November)
        datetime.datetime(2026, 11, 24, 1, 30, tzinfo=UTC),
        datetime.datetime(2026, 11, 23, 1, 30, tzinfo=UTC),  # third day
        datetime.datetime(2026, 11, 22, 1, 30, tzinfo=UTC),  # Sunday: newest of week 47
        datetime.datetime(2026, 10, 31, 1, 30, tzinfo=UTC),  # newest of October
        datetime.datetime(2026, 9, 30, 1, 30, tzinfo=UTC),  # newest of September
    }
    assert keep == {name_at(m) for m in expected}


def test_rotation_keeps_everything_while_there_are_few_backups():
    moments = [datetime.datetime(2026, 11, d, 1, 30, tzinfo=UTC) for d in (20, 21, 22)]
    assert backups.backups_to_keep(stored(*moments), daily=7, weekly=4, monthly=12) == {
        name_at(m) for m in moments
    }


@pytest.mark.django_db
def test_prune_deletes_what_retention_does_not_keep_and_records_it(backup_settings):
    settings = backup_settings
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 2, 0, 0
    directory = settings.BACKUP_DIR
    directory.mkdir()
    moments = [datetime.datetime(2026, 11, d, 1, 30, tzinfo=UTC) for d in (21, 22, 23, 24)]
    for moment in moments:
        (directory / name_at(moment)).write_bytes(b"x")
    (directory / "notes.txt").write_text("not a backup")
    old = Backup.objects.create(
        trigger=Backup.Trigger.SCHEDULE, status=Backup.Status.SUCCEEDED, name=name_at(moments[0])
    )

    deleted = backups.prune()

    assert sorted(deleted) == [name_at(moments[0]), name_at(moments[1])]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [name_at(moments[2]), name_at(moments[3]), "notes.txt"]
    )
    old.refresh_from_db()
    assert old.status == Backup.Status.DELETED
    entry = audit.AuditEntry.objects.get(action=audit.Action.BACKUP_PRUNE)
    assert sorted(entry.data["deleted"]) == sorted(deleted)


@pytest.fixture
def s3_bucket(monkeypatch, backup_settings):
    """A bucket on moto's S3 server, listening on a free port, configured as the destination.

    Moto keeps its buckets in the process, shared by its servers: each test has a bucket of
    its own name.
    """
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"cims-backups-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    backup_settings.BACKUP_S3_BUCKET = bucket
    backup_settings.BACKUP_S3_PREFIX = "nightly/"
    backup_settings.BACKUP_S3_ENDPOINT_URL = endpoint
    backup_settings.BACKUP_S3_REGION = "us-east-1"
    yield client
    server.stop()


def keys_in(client):
    listing = client.list_objects_v2(Bucket=client.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_backup_goes_to_s3_and_restores_from_it_by_name(
    transactional_db, make_customer, s3_bucket, backup_settings, backup_keys, capsys
):
    make_customer("客户")
    call_command("backup")
    backup = Backup.objects.get()
    assert backup.status == Backup.Status.SUCCEEDED
    assert backup.destination == f"s3://{s3_bucket.bucket}/nightly/"
    assert keys_in(s3_bucket) == [f"nightly/{backup.name}"]
    head = s3_bucket.head_object(Bucket=s3_bucket.bucket, Key=f"nightly/{backup.name}")
    assert head["ContentLength"] == backup.size
    # Nothing is left behind on the server once the bucket has it.
    assert [p for p in backup_settings.BACKUP_DIR.iterdir() if p.is_file()] == []

    call_command("restore", backup.name, private_key=str(backup_keys["private"]), verify_only=True)
    assert "is intact" in capsys.readouterr().out


def test_prune_deletes_old_backups_from_s3(transactional_db, s3_bucket, backup_settings):
    backup_settings.BACKUP_KEEP_DAILY = 1
    backup_settings.BACKUP_KEEP_WEEKLY = backup_settings.BACKUP_KEEP_MONTHLY = 0
    old = [datetime.datetime(2026, 11, d, 1, 30, tzinfo=UTC) for d in (10, 11, 12)]
    for moment in old:
        s3_bucket.put_object(Bucket=s3_bucket.bucket, Key=f"nightly/{name_at(moment)}", Body=b"x")
    s3_bucket.put_object(Bucket=s3_bucket.bucket, Key="elsewhere/keep-me", Body=b"x")

    deleted = backups.prune()

    assert sorted(deleted) == [name_at(old[0]), name_at(old[1])]
    assert keys_in(s3_bucket) == ["elsewhere/keep-me", f"nightly/{name_at(old[2])}"]


def test_deploy_check_wants_a_public_key_and_no_private_key_on_the_server(
    backup_settings, backup_keys
):
    assert [problem.id for problem in backups.check_backup_keys()] == ["accounts.W103"]
    backup_settings.BACKUP_PRIVATE_KEY_FILE = ""
    assert backups.check_backup_keys() == []
    backup_settings.BACKUP_PUBLIC_KEY_FILE = str(backup_keys["other"])  # a private key
    assert [problem.id for problem in backups.check_backup_keys()] == ["accounts.E102"]
