import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from accounts import backup_container
from accounts.models import Backup

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def public_key(tmp_path_factory):
    directory = tmp_path_factory.mktemp("backup-keys")
    backup_container.create_key_pair(directory / "private.pem", directory / "public.pem")
    return directory / "public.pem"


@pytest.fixture
def backups_to(settings, tmp_path, public_key):
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_PUBLIC_KEY_FILE = str(public_key)
    settings.BACKUP_S3_BUCKET = ""
    return settings.BACKUP_DIR


@pytest.fixture
def admin_page(context, live_server, client, admin_user, verified_login):
    verified_login(client, admin_user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_administrator_starts_a_backup_and_watches_it_succeed(
    admin_page, backups_to, celery_worker, screenshot
):
    page = admin_page
    Backup.objects.create(
        trigger=Backup.Trigger.SCHEDULE,
        status=Backup.Status.FAILED,
        error="pg_dump failed: could not connect",
    )
    page.goto("/manage/users/")
    page.get_by_role("link", name="Backups").click()
    expect(page.get_by_role("heading", name="Backups")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(
        "The latest backup failed: pg_dump failed: could not connect"
    )

    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_role("status")).to_have_text("Backup started. This page shows its progress.")
    newest = page.get_by_role("row").nth(1)
    # The page polls until the worker has finished, then the warning is gone on the next visit.
    expect(newest).to_contain_text("Succeeded", timeout=60_000)
    expect(newest).to_contain_text("Administrator (admin)")
    backup = Backup.objects.get(status=Backup.Status.SUCCEEDED)
    expect(newest.get_by_role("cell", name=re.compile(r"\d+(\.\d)?\s(KB|MB)"))).to_be_visible()
    screenshot(page, "manage-backups")
    assert (backups_to / backup.name).exists()

    newest.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("^Backup of"))).to_be_visible()
    expect(page.get_by_text(backup.name)).to_be_visible()
    expect(page.get_by_role("cell", name="public.customers_customer", exact=True)).to_be_visible()
    screenshot(page, "manage-backup-detail")
    page.goto("/manage/backups/")
    expect(page.get_by_role("alert")).to_have_count(0)
