"""Tamper evidence: hash chain, append-only trigger, signed checkpoints, concurrent writers."""

import json
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from accounts import audit
from accounts.audit import AuditEntry

# The messages checked here are read in English.
pytestmark = pytest.mark.usefixtures("english")

TABLE = "accounts_auditentry"
TRIGGER = "accounts_auditentry_append_only"


@pytest.fixture(autouse=True)
def checkpoint_settings(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "keys" / "audit.pem")
    settings.AUDIT_SIGNING_KEY_AUTOCREATE = True
    settings.AUDIT_PUBLIC_KEY_FILE = ""
    return settings


@pytest.fixture
def trail(db, customer):
    """Ten entries, of several kinds."""
    for number in range(10):
        audit.record(
            audit.Action.CUSTOMER_UPDATE,
            target=customer,
            data={"changes": audit.changes({"city": "上海"}, {"city": f"北京{number}"})},
        )
    return list(AuditEntry.objects.order_by("seq"))


def tamper(sql, params=()):
    """Run SQL against the trail with its trigger switched off, as a superuser could."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TRIGGER}")
        cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TRIGGER}")


def verify(*args):
    call_command(
        "verify_audit", *args, stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w")
    )


def broken_entry(*args):
    with pytest.raises(CommandError) as failure:
        verify(*args)
    return str(failure.value)


def test_untouched_trail_passes(trail):
    result = audit.verify_trail()

    assert (result.entries, result.head_seq) == (10, 10)
    verify()


def test_empty_trail_passes(db):
    assert audit.verify_trail().entries == 0
    verify("--checkpoint")


def test_trail_longer_than_a_batch_passes(trail):
    assert audit.verify_trail(batch_size=3).entries == 10


def test_edited_entry_is_named(trail):
    # The details of an entry about a customer are sealed: any change to them breaks the hash.
    tamper(f"""UPDATE {TABLE} SET data = data || '{{"city": "广州"}}' WHERE seq = 4""")

    assert "entry 4:" in broken_entry()
    assert "Entry 4 was changed" in broken_entry()


def test_edited_and_rehashed_entry_breaks_the_link_to_the_next(trail):
    entry = AuditEntry.objects.get(seq=4)
    entry.actor_username = "somebody-else"
    tamper(
        f"UPDATE {TABLE} SET actor_username = %s, hash = %s WHERE seq = 4",
        [entry.actor_username, entry.compute_hash()],
    )

    assert "entry 5:" in broken_entry()
    assert "entry 4 was changed and re-hashed" in broken_entry()


def test_deleted_entry_is_named(trail):
    tamper(f"DELETE FROM {TABLE} WHERE seq = 6")

    assert "entry 6:" in broken_entry()
    assert "missing" in broken_entry()


def test_deleted_first_entry_is_named(trail):
    tamper(f"DELETE FROM {TABLE} WHERE seq = 1")

    assert "entry 1:" in broken_entry()


def test_swapped_entries_are_named(trail):
    # Entries 3 and 7 trade places: each keeps its content and hash under the other's number.
    tamper(f"UPDATE {TABLE} SET seq = seq + 1000 WHERE seq IN (3, 7)")
    tamper(f"UPDATE {TABLE} SET seq = CASE seq WHEN 1003 THEN 7 ELSE 3 END WHERE seq > 1000")

    assert "entry 3:" in broken_entry()


def test_swapped_contents_are_named(trail):
    tamper(
        f"""UPDATE {TABLE} AS a SET action = b.action, data = b.data, created_at = b.created_at
            FROM {TABLE} AS b WHERE (a.seq, b.seq) IN ((5, 2), (2, 5))"""
    )

    assert "entry 2:" in broken_entry()


def test_trigger_refuses_update(trail):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {TABLE} SET actor_username = 'x' WHERE seq = 2")


def test_trigger_refuses_delete(trail):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE seq = 10")


def rewrite_from(seq, **changes):
    """Change one entry and recompute every hash after it, consistently: a whole new chain."""
    entries = list(AuditEntry.objects.order_by("seq"))
    prev_hash = entries[seq - 2].hash if seq > 1 else audit.GENESIS_HASH
    for entry in entries[seq - 1 :]:
        if entry.seq == seq:
            for name, value in changes.items():
                setattr(entry, name, value)
        entry.prev_hash = prev_hash
        entry.hash = entry.compute_hash()
        tamper(
            f"UPDATE {TABLE} SET actor_username = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            [entry.actor_username, entry.prev_hash, entry.hash, entry.seq],
        )
        prev_hash = entry.hash


def test_rewritten_chain_passes_alone_but_fails_against_the_checkpoint(trail, customer):
    verify("--checkpoint")
    rewrite_from(3, actor_username="nobody")

    assert audit.verify_trail(with_checkpoints=False).entries == 10
    message = broken_entry()
    assert "entry 10:" in message
    assert "checkpoint-000000000010.json" in message


def test_earliest_mismatching_checkpoint_bounds_the_rewrite(trail, customer, settings):
    for _number in range(5):
        audit.record(audit.Action.CUSTOMER_UPDATE, target=customer)
        audit.write_checkpoint()
    rewrite_from(13, actor_username="nobody")

    message = broken_entry()
    assert "entry 13:" in message
    assert "after entry 12" in message


def test_entries_deleted_from_the_end_fail_against_the_checkpoint(trail):
    verify("--checkpoint")
    tamper(f"DELETE FROM {TABLE} WHERE seq > 8")

    assert "entry 9:" in broken_entry()


def test_forged_checkpoint_fails(trail, settings):
    path = audit.write_checkpoint()
    document = json.loads(path.read_text())
    document["hash"] = "f" * 64
    path.write_text(json.dumps(document))

    assert "is not genuine" in broken_entry()


def test_checkpoint_signed_with_another_key_fails(trail, settings, tmp_path):
    audit.write_checkpoint()
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "other.pem")

    assert "is not genuine" in broken_entry()


def test_checkpoint_verifies_with_the_public_key_alone(trail, settings, tmp_path):
    from cryptography.hazmat.primitives import serialization

    audit.write_checkpoint()
    public = (
        audit.signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "public.pem").write_bytes(public)
    settings.AUDIT_PUBLIC_KEY_FILE = str(tmp_path / "public.pem")
    settings.AUDIT_SIGNING_KEY_FILE = ""

    assert audit.verify_trail().checkpoints == 1


def test_writing_the_same_head_twice_keeps_one_checkpoint(trail, settings):
    first = audit.write_checkpoint()

    assert audit.write_checkpoint() == first
    assert len(list(settings.AUDIT_CHECKPOINT_DIR.iterdir())) == 1


def test_checkpoint_refuses_to_sign_a_tampered_chain(trail):
    audit.write_checkpoint()
    audit.record(audit.Action.EXPORT)
    tamper(f"UPDATE {TABLE} SET action = 'login' WHERE seq = 11")

    with pytest.raises(audit.ChainBroken):
        audit.write_checkpoint()


def test_production_without_a_signing_key_cannot_checkpoint(trail, settings):
    settings.AUDIT_SIGNING_KEY_FILE = ""
    settings.AUDIT_SIGNING_KEY_AUTOCREATE = False

    with pytest.raises(ImproperlyConfigured):
        audit.write_checkpoint()
    assert [error.id for error in audit.check_signing_key()] == ["accounts.E101"]


def test_development_creates_a_private_signing_key(trail, settings):
    audit.write_checkpoint()

    key_file = settings.AUDIT_SIGNING_KEY_FILE
    assert oct(__import__("os").stat(key_file).st_mode & 0o777) == "0o600"
    assert audit.check_signing_key() == []


def test_checkpoint_task_signs_the_head(trail, settings):
    from accounts.tasks import write_audit_checkpoint

    write_audit_checkpoint.apply()

    assert [cp.seq for cp in audit.read_checkpoints()] == [10]


WRITERS = 50


def test_fifty_concurrent_writers_leave_one_gapless_chain(transactional_db):
    barrier = threading.Barrier(WRITERS)
    errors = []

    def write(number):
        try:
            barrier.wait()
            with transaction.atomic():
                audit.record(audit.Action.EXPORT, data={"writer": number})
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    entries = list(AuditEntry.objects.order_by("seq").values_list("seq", "prev_hash", "data"))
    assert [seq for seq, _prev, _data in entries] == list(range(1, WRITERS + 1))
    assert len({prev for _seq, prev, _data in entries}) == WRITERS  # no fork
    assert sorted(data["writer"] for _seq, _prev, data in entries) == list(range(WRITERS))
    assert audit.verify_trail().entries == WRITERS


def test_concurrent_writer_rolling_back_leaves_no_gap(transactional_db):
    holding = threading.Event()
    release = threading.Event()

    def write_then_roll_back():
        try:
            with transaction.atomic():
                audit.record(audit.Action.EXPORT, data={"rolled_back": True})
                holding.set()
                release.wait(10)
                raise RuntimeError
        except RuntimeError:
            pass
        finally:
            connections.close_all()

    thread = threading.Thread(target=write_then_roll_back)
    thread.start()
    holding.wait(10)
    waiter = threading.Thread(
        target=lambda: (audit.record(audit.Action.EXPORT), connections.close_all())
    )
    waiter.start()
    release.set()
    thread.join()
    waiter.join()

    assert list(AuditEntry.objects.values_list("seq", flat=True)) == [1]
    assert audit.verify_trail().entries == 1
