import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from accounts import roles

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "Plum-blossom-river-2026"


@pytest.fixture
def admin_page(context, live_server, client, admin_user, verified_login):
    """A page signed in as the administrator, past the second factor their role requires."""
    verified_login(client, admin_user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_administrator_creates_a_user_with_role_and_team_then_deactivates_them(
    admin_page, teams, screenshot
):
    page = admin_page
    page.goto("/manage/users/")
    page.get_by_role("link", name="New user").click()

    page.get_by_label("Username").fill("li.na")
    page.get_by_label("Last name").fill("李")
    page.get_by_label("First name").fill("娜")
    page.get_by_label("Email").fill("li.na@example.com")
    page.get_by_label("Initial password").fill(NEW_PASSWORD)
    page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("combobox", name="Role").select_option(label="Viewer")
    page.get_by_label("North Sales").check()
    screenshot(page, "manage-user-create")
    page.get_by_role("button", name="Create user").click()

    expect(page.get_by_role("status")).to_have_text("User 李娜 created.")
    row = page.get_by_role("row").filter(has_text="li.na@example.com")
    expect(row.get_by_role("cell", name="Viewer")).to_be_visible()
    screenshot(page, "manage-user-list")
    user = get_user_model().objects.get(username="li.na")
    assert [group.name for group in user.groups.filter(team__isnull=True)] == [roles.VIEWER]
    assert [team.name for team in user.teams] == ["North Sales"]

    row.get_by_role("link", name="李娜").click()
    page.get_by_role("link", name="Deactivate…").click()
    expect(page.get_by_role("heading", name="Deactivate 李娜?")).to_be_visible()
    page.get_by_role("button", name="Deactivate").click()

    expect(page).to_have_url(re.compile(rf"/manage/users/{user.pk}/$"))
    expect(page.get_by_role("status")).to_have_text("李娜 is deactivated and signed out.")
    expect(page.get_by_role("link", name="Reactivate…")).to_be_visible()
    user.refresh_from_db()
    assert not user.is_active
