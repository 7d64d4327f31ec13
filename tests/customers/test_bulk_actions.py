"""Bulk changes: a confirmation with the count, then inline or on a real Celery worker."""

import time
import uuid

import pytest
from django.contrib.messages import get_messages

from customers.models import BulkAction, Consent, Customer, Interaction, Order, Tag

pytestmark = pytest.mark.usefixtures("english")


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def three(make_customer, staff):
    """Two active customers and one lead, with tags in a particular order."""
    return [
        make_customer("甲", status="active", tags=["b", "a"], owner=staff),
        make_customer("乙", status="active", tags=["a"]),
        make_customer("丙", status="lead", tags=[]),
    ]


def post_bulk(client, action, *, selected=(), scope="selected", query="", confirmed=True, **extra):
    data = {"action": action, "scope": scope, "query": query, **extra}
    data["selected"] = [str(c.pk) for c in selected]
    if confirmed:
        data["confirmed"] = "True"
    return client.post("/customers/bulk/", data)


def state(customer):
    customer.refresh_from_db()
    return customer


# Confirmation -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_confirmation_counts_the_selected_customers_and_changes_nothing(admin_client, three):
    response = post_bulk(
        admin_client, "set_status", selected=three[:2], status="churned", confirmed=False
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "This will change 2 customers." in content
    assert 'name="confirmed" value="True"' in content
    assert content.count('name="selected"') == 2
    assert {state(c).status for c in three} == {"active", "lead"}


@pytest.mark.django_db
def test_confirmation_counts_every_customer_matching_the_filter(admin_client, three):
    response = post_bulk(
        admin_client, "add_tags", scope="all", query="status=active", tags="new", confirmed=False
    )
    assert response.status_code == 200
    assert response.context["total"] == 2
    assert "This will change 2 customers." in response.content.decode()
    assert all("new" not in state(c).tags for c in three)


@pytest.mark.django_db
def test_list_offers_the_change_of_every_matching_customer_with_their_count(admin_client, three):
    content = admin_client.get("/customers/", {"status": "active"}).content.decode()
    assert '<option value="all">all 2 matching customers</option>' in content
    assert '<input type="hidden" name="query" value="status=active">' in content


@pytest.mark.django_db
def test_confirming_a_delete_warns_that_it_cannot_be_undone(admin_client, three):
    response = post_bulk(admin_client, "delete", selected=three[:1], confirmed=False)
    content = response.content.decode()
    assert "This will change 1 customer." in content
    assert "Deleted customers cannot be restored." in content
    assert Customer.objects.count() == 3


# Applying inline --------------------------------------------------------------------------


@pytest.mark.django_db
def test_adding_tags_appends_missing_ones_in_order_without_duplicates(admin_client, three):
    response = post_bulk(admin_client, "add_tags", selected=three, tags="a, c, a", query="q=x")
    assert response.status_code == 302
    assert response["Location"] == "/customers/?q=x"
    assert [state(c).tags for c in three] == [["b", "a", "c"], ["a", "c"], ["a", "c"]]
    assert [c.version for c in three] == [2, 2, 2]
    assert set(Tag.objects.values_list("name", flat=True)) >= {"a", "c"}
    assert messages_of(response) == ["Add tags: 3 customers changed."]


@pytest.mark.django_db
def test_adding_a_tag_everyone_has_changes_nobody(admin_client, three):
    response = post_bulk(admin_client, "add_tags", selected=three[:2], tags="a")
    assert [state(c).version for c in three[:2]] == [1, 1]
    assert messages_of(response) == ["Add tags: 0 customers changed."]


@pytest.mark.django_db
def test_removing_tags_keeps_the_others_in_order(admin_client, three):
    post_bulk(admin_client, "remove_tags", selected=three, tags="a")
    assert [state(c).tags for c in three] == [["b"], [], []]
    assert [c.version for c in three] == [2, 2, 1]


@pytest.mark.django_db
def test_assigning_an_owner_to_every_matching_customer(admin_client, three, staff2):
    response = post_bulk(
        admin_client, "assign_owner", scope="all", query="status=active", owner=staff2.pk
    )
    assert [state(c).owner for c in three] == [staff2, staff2, None]
    assert [c.version for c in three] == [2, 2, 1]
    assert messages_of(response) == ["Assign owner: 2 customers changed."]


@pytest.mark.django_db
def test_assigning_no_owner_clears_it(admin_client, three, admin_user):
    post_bulk(admin_client, "assign_owner", selected=three, owner="")
    assert [state(c).owner for c in three] == [None, None, None]
    assert [c.version for c in three] == [2, 1, 1]
    assert three[0].updated_by == admin_user


@pytest.mark.django_db
def test_changing_the_status_of_the_selected_customers(admin_client, three):
    post_bulk(admin_client, "set_status", selected=three[1:], status="inactive")
    assert [state(c).status for c in three] == ["active", "inactive", "inactive"]
    assert [c.version for c in three] == [1, 2, 2]


@pytest.mark.django_db
def test_deleting_customers_removes_their_interactions_orders_and_consents(admin_client, three):
    doomed, kept = three[0], three[1]
    for customer in (doomed, kept):
        Interaction.objects.create(customer=customer, kind="call", summary="hello")
        Order.objects.create(customer=customer, external_id=f"O-{customer.pk}", amount=5)
        Consent.objects.create(customer=customer, purpose="sms", granted=True)
    response = post_bulk(admin_client, "delete", selected=[doomed])
    assert messages_of(response) == ["Delete: 1 customer changed."]
    assert not Customer.objects.filter(pk=doomed.pk).exists()
    for model in (Interaction, Order, Consent):
        assert list(model.objects.values_list("customer_id", flat=True)) == [kept.pk]


@pytest.mark.django_db
def test_inline_bulk_action_is_recorded_as_done(admin_client, admin_user, three):
    post_bulk(admin_client, "set_status", selected=three, status="churned")
    bulk = BulkAction.objects.get()
    assert (bulk.user, bulk.state, bulk.total, bulk.processed, bulk.changed) == (
        admin_user,
        "done",
        3,
        3,
        3,
    )


# Invalid input ----------------------------------------------------------------------------


def _unchanged(three):
    return [(state(c).tags, c.status, c.owner_id, c.version) for c in three]


@pytest.mark.django_db
def test_nothing_selected_is_refused_with_a_message(admin_client, three):
    before = _unchanged(three)
    response = post_bulk(admin_client, "set_status", status="churned", query="status=active")
    assert response.status_code == 302
    assert response["Location"] == "/customers/?status=active"
    assert messages_of(response) == ["Select at least one customer."]
    assert _unchanged(three) == before
    assert not BulkAction.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "field", "message"),
    [
        ("add_tags", "tags", "Enter at least one tag."),
        ("remove_tags", "tags", "Enter at least one tag."),
        ("set_status", "status", "Choose a status."),
    ],
)
def test_missing_tags_or_status_is_refused_beside_the_field(
    admin_client, three, action, field, message
):
    before = _unchanged(three)
    response = post_bulk(admin_client, action, selected=three, tags="", status="")
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert message in response.content.decode()
    assert _unchanged(three) == before
    assert not BulkAction.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"action": "explode"}, "action"),
        ({"action": "set_status", "status": "vanished"}, "status"),
        ({"action": "assign_owner", "owner": "999999"}, "owner"),
        ({"action": "set_status", "status": "lead", "scope": "everyone"}, "scope"),
    ],
)
def test_invalid_choices_are_refused_with_an_error(admin_client, three, data, field):
    before = _unchanged(three)
    response = admin_client.post(
        "/customers/bulk/",
        {"scope": "selected", "selected": [str(three[0].pk)], "confirmed": "True", **data},
    )
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert _unchanged(three) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "selected", [["not-a-uuid"], ["1234"], ["", "0190a0a0-0000-7000-8000-000000000000"]]
)
def test_malformed_selection_is_refused_with_a_clear_message(admin_client, three, selected):
    before = _unchanged(three)
    response = admin_client.post(
        "/customers/bulk/",
        {
            "action": "set_status",
            "status": "churned",
            "scope": "selected",
            "selected": selected,
            "confirmed": "True",
            "query": "status=lead",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/customers/?status=lead"
    assert messages_of(response) == ["The selection is not valid."]
    assert _unchanged(three) == before
    assert not BulkAction.objects.exists()


@pytest.mark.django_db
def test_more_than_a_thousand_selected_ids_are_refused(admin_client, three):
    response = admin_client.post(
        "/customers/bulk/",
        {
            "action": "delete",
            "scope": "selected",
            "confirmed": "True",
            "selected": [str(c.pk) for c in three] + [str(uuid.uuid4()) for _ in range(998)],
        },
    )
    assert response.status_code == 302
    assert messages_of(response) == [
        "Select at most 1000 customers, or choose every matching customer."
    ]
    assert Customer.objects.count() == 3


@pytest.mark.django_db
def test_a_malformed_filter_query_changes_nobody(admin_client, three):
    before = _unchanged(three)
    post_bulk(
        admin_client, "set_status", scope="all", query="created_after=never", status="churned"
    )
    assert _unchanged(three) == before


@pytest.mark.django_db
def test_bulk_action_refuses_get(admin_client, three):
    assert admin_client.get("/customers/bulk/").status_code == 405


@pytest.mark.django_db
def test_anonymous_visitor_cannot_apply_a_bulk_action(client, three):
    response = post_bulk(client, "delete", selected=three)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Customer.objects.count() == 3


# Background -------------------------------------------------------------------------------


def wait_until_finished(bulk, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bulk.refresh_from_db()
        if bulk.finished:
            return bulk
        time.sleep(0.05)
    raise AssertionError(f"bulk action still {bulk.state} after {seconds}s")


def test_a_large_bulk_action_runs_on_the_celery_worker(
    celery_worker, settings, admin_client, three
):
    settings.BULK_ACTION_INLINE_LIMIT = 2
    response = post_bulk(admin_client, "add_tags", scope="all", query="", tags="campaign")
    bulk = BulkAction.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/customers/bulk/{bulk.pk}/"
    wait_until_finished(bulk)
    assert (bulk.state, bulk.total, bulk.processed, bulk.changed) == ("done", 3, 3, 3)
    assert all(state(c).tags[-1] == "campaign" for c in three)
    assert [c.version for c in three] == [2, 2, 2]
    page = admin_client.get(bulk.get_absolute_url())
    assert page.status_code == 200
    assert "Done: 3 customers changed." in page.content.decode()
    assert 'hx-trigger="every 1s"' not in page.content.decode()


@pytest.mark.django_db
def test_progress_page_of_an_unfinished_action_polls_and_shows_progress(admin_client, admin_user):
    bulk = BulkAction.objects.create(
        user=admin_user, action="delete", total=2000, processed=500, state="running"
    )
    response = admin_client.get(bulk.get_absolute_url())
    content = response.content.decode()
    assert "500 of 2,000 customers processed…" in content
    assert 'hx-trigger="every 1s"' in content
    assert 'value="25"' in content


@pytest.mark.django_db
def test_htmx_poll_of_the_progress_page_gets_only_the_progress(admin_client, admin_user):
    bulk = BulkAction.objects.create(
        user=admin_user, action="delete", total=10, processed=10, changed=10, state="done"
    )
    response = admin_client.get(bulk.get_absolute_url(), headers={"HX-Request": "true"})
    content = response.content.decode().strip()
    assert content.startswith('<div id="progress"')
    assert "<html" not in content
    assert "Done: 10 customers changed." in content


@pytest.mark.django_db
def test_progress_page_of_another_users_action_is_not_found(client, staff, staff2):
    bulk = BulkAction.objects.create(user=staff, action="delete", total=1)
    client.force_login(staff2)
    assert client.get(bulk.get_absolute_url()).status_code == 404


@pytest.mark.django_db
def test_progress_page_of_an_action_that_does_not_exist_is_not_found(admin_client):
    assert (
        admin_client.get("/customers/bulk/0190a0a0-0000-7000-8000-000000000000/").status_code == 404
    )
