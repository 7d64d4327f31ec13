import pytest

from accounts.signals import login_locked_out


@pytest.fixture
def lockouts():
    """The usernames that lockouts are announced for (accounts.signals.login_locked_out)."""
    received = []

    def remember(sender, username, request, **kwargs):
        received.append(username)

    login_locked_out.connect(remember, dispatch_uid="test-lockouts")
    yield received
    login_locked_out.disconnect(dispatch_uid="test-lockouts")


@pytest.fixture(scope="session")
def backup_keys(tmp_path_factory):
    """An RSA key pair for backups, and a second private key they were not made for."""
    from accounts import backup_container

    directory = tmp_path_factory.mktemp("backup-keys")
    backup_container.create_key_pair(directory / "private.pem", directory / "public.pem")
    backup_container.create_key_pair(directory / "other.pem", directory / "other-public.pem")
    return {
        "private": directory / "private.pem",
        "public": directory / "public.pem",
        "other": directory / "other.pem",
    }


@pytest.fixture
def backup_settings(settings, tmp_path, backup_keys):
    """Backups into a directory of the test's own, encrypted for `backup_keys`."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_PUBLIC_KEY_FILE = str(backup_keys["public"])
    settings.BACKUP_PRIVATE_KEY_FILE = str(backup_keys["private"])
    settings.BACKUP_S3_BUCKET = ""
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "audit-signing-key.pem")
    settings.AUDIT_SIGNING_KEY_AUTOCREATE = True
    return settings
