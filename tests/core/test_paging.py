import datetime

import pytest

from cims.paging import count_matches, keyset_page
from customers.models import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def five(make_customer):
    for number in range(5):
        make_customer(f"客户{number}")


def test_an_estimate_far_beyond_the_limit_is_shown_without_counting(
    five, planner_expects, django_assert_num_queries
):
    planner_expects(50_000)
    with django_assert_num_queries(0):
        assert count_matches(Customer.objects.all(), limit=10) == (50_000, True)


@pytest.mark.parametrize(
    ("estimate", "limit"),
    [(15, 10), (15_000, 10), (30_000, 20_000)],
    ids=["near the limit", "small", "less than twice the limit"],
)
def test_other_estimates_are_checked_by_counting(five, planner_expects, estimate, limit):
    planner_expects(estimate)
    assert count_matches(Customer.objects.all(), limit=limit) == (5, False)


def test_more_rows_than_the_limit_are_reported_as_at_least_the_limit(five, planner_expects):
    planner_expects(2)
    assert count_matches(Customer.objects.all(), limit=3) == (4, True)


@pytest.fixture
def dated(make_customer):
    """Twelve customers, some created at the same moment, so the id must break ties."""
    moment = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)
    for number in range(12):
        customer = make_customer(f"客户{number}")
        created = moment + datetime.timedelta(hours=number // 3)
        Customer.objects.filter(pk=customer.pk).update(created_at=created)


@pytest.mark.parametrize("order", [("-created_at", "-id"), ("created_at", "id")])
def test_sorted_pages_are_the_pages_of_the_index_order(dated, order):
    customers = Customer.objects.all()
    walked = keyset_page(customers, order=order, size=5)
    sorted_ = keyset_page(customers, order=order, size=5, sort=True)
    assert sorted_ == walked
    after = keyset_page(customers, order=order, size=5, after=walked.next_cursor, sort=True)
    assert after == keyset_page(customers, order=order, size=5, after=walked.next_cursor)
    before = keyset_page(customers, order=order, size=5, before=after.previous_cursor, sort=True)
    assert before.items == walked.items
