"""The customer analytics page, its refresh, and the customer list's analytics filters and sorts."""

import datetime
import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from customers.models import Customer, Order
from reports import metrics
from reports.models import MetricsRefresh

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

URL = "/reports/customers/"


def at(day):
    return datetime.datetime.fromisoformat(f"{day}T12:00:00+00:00")


def buy(customer, day, amount, number):
    Order.objects.create(
        customer=customer,
        external_id=f"V-{number}",
        ordered_at=at(day),
        amount=Decimal(amount),
        lines=[{"product": "茶叶", "quantity": 1, "unit_price": amount}],
    )


@pytest.fixture
def two_teams(staff, staff2, teams):
    """Two customers of `staff` (one buying twice), one of `staff2` who spent 999."""
    mine = Customer.objects.create(display_name="我的", owner=staff, team=teams[0])
    idle = Customer.objects.create(display_name="未购", owner=staff, team=teams[0])
    theirs = Customer.objects.create(display_name="他人的", owner=staff2, team=teams[1])
    buy(mine, "2026-01-01", "100", 1)
    buy(mine, "2026-02-01", "100", 2)
    buy(theirs, "2026-01-15", "999", 3)
    metrics.refresh_metrics(MetricsRefresh.objects.create(state="done"))
    return mine, idle, theirs


def analyst(user):
    user.user_permissions.add(Permission.objects.get(codename="view_analysis"))
    return user


def test_the_page_shows_the_figures_of_all_customers_to_a_manager(manager_client, two_teams):
    response = manager_client.get(URL)
    assert response.status_code == 200
    content = response.content.decode()
    # The manager's team holds "mine" and "idle"; staff2's customer is in another team.
    assert response.context["customers"] == 2
    assert response.context["lifetime"]["revenue"] == Decimal("200")
    assert "Predicted LTV = average order value × purchase frequency" in content
    assert 'href="/customers/?segment=none"' in content
    assert 'id="results-charts"' in content


def test_a_staff_member_sees_only_the_figures_of_their_customers(client, staff2, two_teams):
    client.force_login(analyst(staff2))
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["customers"] == 1
    assert response.context["lifetime"]["revenue"] == Decimal("999")
    segments = {row["segment"]: row["customers"] for row in response.context["segments"]}
    assert sum(segments.values()) == 1


def test_an_administrator_sees_everything(admin_client, two_teams):
    response = admin_client.get(URL)
    assert response.context["customers"] == 3
    assert response.context["lifetime"]["revenue"] == Decimal("1199")
    assert response.context["lifetime"]["repurchase_rate"] == pytest.approx(0.5)


def test_the_page_needs_the_analysis_permission(client, staff, viewer):
    for user in (staff, viewer):
        client.force_login(user)
        assert client.get(URL).status_code == 403


def test_the_figures_are_cached_until_the_next_refresh(admin_client, two_teams):
    admin_client.get(URL)
    newcomer = Customer.objects.create(display_name="新")
    buy(newcomer, "2026-03-01", "5", 4)
    assert admin_client.get(URL).context["customers"] == 3
    metrics.refresh_metrics(MetricsRefresh.objects.create(state="done"))
    assert admin_client.get(URL).context["customers"] == 4


def test_only_those_allowed_may_start_a_refresh(client, staff, two_teams):
    client.force_login(analyst(staff))
    assert client.post("/reports/customers/refresh/").status_code == 403
    assert "Refresh now" not in client.get(URL).content.decode()


def test_a_refresh_is_asked_for_once_and_shown_with_its_progress(manager_client, two_teams):
    response = manager_client.post("/reports/customers/refresh/")
    refresh = MetricsRefresh.objects.filter(state="queued").get()
    assert response.status_code == 302
    assert response["Location"] == f"/reports/customers/refresh/{refresh.pk}/"
    # Asked again while it waits: the same refresh.
    manager_client.post("/reports/customers/refresh/")
    assert MetricsRefresh.objects.filter(state="queued").count() == 1
    page = manager_client.get(response["Location"])
    assert "Waiting for a worker" in page.content.decode()
    assert manager_client.get("/reports/customers/refresh/").status_code == 405


def test_a_refresh_runs_in_the_worker(celery_worker, manager, verified_login, two_teams):
    from django.test import Client

    client = verified_login(Client(), manager)
    newcomer = Customer.objects.create(display_name="新", owner=manager)
    buy(newcomer, "2026-03-01", "5", 4)
    location = client.post("/reports/customers/refresh/")["Location"]
    deadline = time.monotonic() + 20
    refresh = MetricsRefresh.objects.get(pk=location.rstrip("/").rsplit("/", 1)[1])
    while refresh.state != "done" and time.monotonic() < deadline:
        time.sleep(0.1)
        refresh.refresh_from_db()
    assert refresh.state == "done", refresh.error
    assert Customer.objects.get(pk=newcomer.pk).metrics.segment is not None
    assert "Done:" in client.get(location).content.decode()


# The customer list: analytics filters and sorts ---------------------------------------------


def names(response):
    assert response.status_code == 200, response.content[:500]
    return [c.display_name for c in response.context["page"].items]


def listed(client, **params):
    return set(names(client.get("/customers/", params)))


@pytest.fixture
def shoppers(staff, teams):
    """甲 bought much and often, 乙 once recently, 丙 never; birth years and genders differ."""
    year = timezone.localdate().year
    a = Customer.objects.create(
        display_name="甲", gender="female", birthday=datetime.date(year - 30, 3, 1)
    )
    b = Customer.objects.create(display_name="乙", gender="male", province="上海市")
    c = Customer.objects.create(
        display_name="丙", birthday=datetime.date(year - 70, 1, 1), city="杭州"
    )
    for number, day in enumerate(("2025-01-01", "2025-04-01", "2025-08-01"), start=10):
        buy(a, day, "500", number)
    buy(b, "2026-03-01", "20", 20)
    metrics.refresh_metrics()
    return a, b, c


def test_filter_by_segment_or_no_segment(admin_client, shoppers):
    a, b, _c = shoppers
    assert listed(admin_client, segment=a.metrics.segment) == {"甲"}
    assert listed(admin_client, segment=["none", b.metrics.segment]) == {"乙", "丙"}


def test_filter_by_gender_and_age_band(admin_client, shoppers):
    assert listed(admin_client, gender="female") == {"甲"}
    assert listed(admin_client, gender=["none", "male"]) == {"乙", "丙"}
    assert listed(admin_client, age_band="25-34") == {"甲"}
    assert listed(admin_client, age_band=["65plus", "unknown"]) == {"乙", "丙"}


def test_filter_by_first_purchase_and_lifetime_value(admin_client, shoppers):
    assert listed(admin_client, first_purchase_after="2026-01-01") == {"乙"}
    assert listed(admin_client, first_purchase_before="2025-01-01") == {"甲"}
    # 甲: 500 a time, 3 orders in 7 months (at least a year): 500 x 3 x 3 years.
    assert listed(admin_client, ltv_min="4500") == {"甲"}
    assert listed(admin_client, ltv_max="4499.99") == {"乙"}


def test_empty_province_city_owner_and_team(admin_client, shoppers):
    assert listed(admin_client, province="none") == {"甲", "丙"}
    assert listed(admin_client, city="none") == {"甲", "乙"}
    assert listed(admin_client, owner="none") == {"甲", "乙", "丙"}
    assert listed(admin_client, team="none") == {"甲", "乙", "丙"}
    # Links saved before "none" still work.
    assert listed(admin_client, owner="null") == {"甲", "乙", "丙"}


def test_an_unknown_segment_or_age_band_is_a_400(admin_client, shoppers):
    assert admin_client.get("/customers/", {"segment": "vip"}).status_code == 400
    assert admin_client.get("/customers/", {"age_band": "90s"}).status_code == 400


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-ltv", ["甲", "乙", "丙"]),
        ("-revenue", ["甲", "乙", "丙"]),
        ("-last_order", ["乙", "甲", "丙"]),
    ],
)
def test_sort_by_lifetime_value_revenue_and_last_order(admin_client, shoppers, sort, expected):
    assert names(admin_client.get("/customers/", {"sort": sort})) == expected
    assert names(admin_client.get("/customers/", {"sort": sort[1:]})) == expected[::-1]


def test_keyset_pages_of_a_metric_sort_hold_every_customer_once(admin_client, db):
    customers = Customer.objects.bulk_create(
        [Customer(display_name=f"客户{i:02d}") for i in range(30)]
    )
    # Pairs of customers with the same value, so that ties cross the page boundary.
    for i, customer in enumerate(customers[:24]):
        buy(customer, "2025-06-01", str(10 * (i // 2) + 10), 100 + i)
    metrics.refresh_metrics()
    seen, after, pages = [], None, 0
    while True:
        params = {"sort": "-ltv", "size": 25, **({"after": after} if after else {})}
        page = admin_client.get("/customers/", params).context["page"]
        seen += [c.pk for c in page.items]
        pages += 1
        if not page.next_cursor:
            break
        after = page.next_cursor
    assert pages == 2
    assert sorted(seen) == sorted(c.pk for c in customers)
    values = [Customer.objects.get(pk=pk).metrics.predicted_ltv or 0 for pk in seen]
    assert values == sorted(values, reverse=True)
    # Back from the second page: the first page again.
    back = admin_client.get(
        "/customers/", {"sort": "-ltv", "size": 25, "before": page.previous_cursor}
    )
    assert [c.pk for c in back.context["page"].items] == seen[:25]
