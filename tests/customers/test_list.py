"""The customer list: filters, sort orders, page sizes, keyset paging and the count."""

import datetime
import html
import re

import pytest
from django.utils import timezone

from customers.filters import SORTS, sorted_customers
from customers.models import Customer, Order
from customers.search import search_fields

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

T0 = timezone.make_aware(datetime.datetime(2025, 1, 10, 12, 0))


def names(response):
    assert response.status_code == 200, response.content[:500]
    return [c.display_name for c in response.context["page"].items]


def listed(client, **params):
    return set(names(client.get("/customers/", params)))


# Filters ----------------------------------------------------------------------------------


@pytest.fixture
def assorted(staff, staff2, teams, make_customer, custom_fields):
    """Five customers that each filter tells apart."""
    a = make_customer(
        "甲",
        status="active",
        source="store",
        tags=["vip", "上海", "golf"],
        province="上海市",
        city="上海",
        owner=staff,
        team=teams[0],
        created_at=T0,
        attributes={
            "hobby": "书法",
            "score": 90,
            "joined": "2023-05-01",
            "level": "gold",
            "interests": ["golf", "tea"],
            "newsletter": True,
        },
    )
    make_customer(
        "乙",
        status="lead",
        source="web_form",
        tags=["vip"],
        province="广东省",
        city="深圳",
        owner=staff2,
        team=teams[1],
        created_at=T0 + datetime.timedelta(days=10),
        attributes={"score": 55.5, "joined": "2024-01-15", "level": "silver", "newsletter": False},
    )
    make_customer(
        "丙",
        status="churned",
        source="expo",
        tags=["上海"],
        province="上海市",
        city="浦东",
        created_at=T0 + datetime.timedelta(days=20),
        attributes={"interests": ["tea"]},
    )
    make_customer(
        "丁", status="prospect", source="store", created_at=T0 + datetime.timedelta(days=30)
    )
    Order.objects.create(customer=a, external_id="1", amount=10)
    return a


def test_filter_by_one_or_several_statuses(admin_client, assorted):
    assert listed(admin_client, status="active") == {"甲"}
    assert listed(admin_client, status=["lead", "churned"]) == {"乙", "丙"}


def test_filter_by_source(admin_client, assorted):
    assert listed(admin_client, source="store") == {"甲", "丁"}


def test_filter_by_tags_requires_all_of_them(admin_client, assorted):
    assert listed(admin_client, tags="vip") == {"甲", "乙"}
    assert listed(admin_client, tags="vip，上海") == {"甲"}
    assert listed(admin_client, tags="vip, nobody-has-this") == set()


def test_filter_by_province_and_city(admin_client, assorted):
    assert listed(admin_client, province="上海市") == {"甲", "丙"}
    assert listed(admin_client, province="上海市", city="浦东") == {"丙"}


def test_filter_by_owner_or_no_owner(admin_client, staff, assorted):
    assert listed(admin_client, owner=staff.pk) == {"甲"}
    assert listed(admin_client, owner="null") == {"丙", "丁"}


def test_filter_by_team_or_no_team(admin_client, teams, assorted):
    assert listed(admin_client, team=teams[1].pk) == {"乙"}
    assert listed(admin_client, team="null") == {"丙", "丁"}


def test_filter_by_creation_dates_includes_both_ends(admin_client, assorted):
    assert listed(admin_client, created_after="2025-01-20", created_before="2025-01-30") == {
        "乙",
        "丙",
    }
    assert listed(admin_client, created_before="2025-01-10") == {"甲"}
    assert listed(admin_client, created_after="2025-02-09") == {"丁"}


def test_filter_by_having_orders(admin_client, assorted):
    assert listed(admin_client, has_orders="true") == {"甲"}
    assert listed(admin_client, has_orders="false") == {"乙", "丙", "丁"}
    assert len(listed(admin_client, has_orders="")) == 4


def test_filter_by_text_attribute(admin_client, assorted):
    assert listed(admin_client, attr_hobby="书法") == {"甲"}


def test_filter_by_number_attribute_range(admin_client, assorted):
    assert listed(admin_client, attr_score_min="60") == {"甲"}
    assert listed(admin_client, attr_score_max="55.5") == {"乙"}
    assert listed(admin_client, attr_score_min="50", attr_score_max="100") == {"甲", "乙"}


def test_filter_by_date_attribute_range(admin_client, assorted):
    assert listed(admin_client, attr_joined_min="2024-01-01") == {"乙"}
    assert listed(admin_client, attr_joined_max="2024-01-15") == {"甲", "乙"}


def test_filter_by_choice_attribute(admin_client, assorted):
    assert listed(admin_client, attr_level="silver") == {"乙"}


def test_filter_by_multiple_choice_attribute_requires_all_chosen(admin_client, assorted):
    assert listed(admin_client, attr_interests="tea") == {"甲", "丙"}
    assert listed(admin_client, attr_interests=["tea", "golf"]) == {"甲"}


def test_filter_by_yes_no_attribute(admin_client, assorted):
    assert listed(admin_client, attr_newsletter="true") == {"甲"}
    assert listed(admin_client, attr_newsletter="false") == {"乙"}


def test_filters_combine_with_search(admin_client, assorted):
    assert listed(admin_client, q="甲", status="active", tags="vip") == {"甲"}
    assert listed(admin_client, q="甲", status="lead") == set()


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"created_after": "2025-13-45"}, "created", "Enter a valid date."),
        ({"status": "deleted"}, "status", "Select a valid choice."),
        ({"owner": "nobody"}, "owner", "Select a valid choice."),
        ({"team": "999999"}, "team", "Select a valid choice."),
        ({"attr_score_min": "lots"}, "attr_score_min", "Enter a number."),
        ({"attr_level": "bronze"}, "attr_level", "Select a valid choice."),
        ({"attr_joined_max": "yesterday"}, "attr_joined_max", "Enter a valid date."),
    ],
)
def test_malformed_filter_is_a_400_with_the_error_shown(
    admin_client, assorted, params, field, message
):
    response = admin_client.get("/customers/", params)
    assert response.status_code == 400
    errors = response.context["filter"].form.errors
    assert message in errors[field][0]
    content = response.content.decode()
    assert "Some filters are not valid" in content
    assert html.escape(errors[field][0]) in content


def test_search_text_over_the_limit_is_a_400_with_the_error_shown(admin_client, assorted):
    response = admin_client.get("/customers/", {"q": "张" * 101})
    assert response.status_code == 400
    assert "at most 100 characters" in html.unescape(response.content.decode())


# Sort orders ------------------------------------------------------------------------------


@pytest.fixture
def four(make_customer):
    """Pinyin order 阿明 < 白雪 < 陈晨 < 邓丽 differs from the characters' code point order."""
    rows = [
        ("阿明", "delta", "active", 1, 4),
        ("白雪", "alpha", "lead", 2, 3),
        ("陈晨", "charlie", "churned", 3, 1),
        ("邓丽", "bravo", "prospect", 4, 2),
    ]
    for name, company, status, created, updated in rows:
        make_customer(
            name,
            company=company,
            status=status,
            created_at=T0 + datetime.timedelta(hours=created),
            updated_at=T0 + datetime.timedelta(hours=updated),
        )


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created", ["阿明", "白雪", "陈晨", "邓丽"]),
        ("-updated", ["阿明", "白雪", "邓丽", "陈晨"]),
        ("name", ["阿明", "白雪", "陈晨", "邓丽"]),
        ("company", ["白雪", "邓丽", "陈晨", "阿明"]),
        ("status", ["阿明", "陈晨", "白雪", "邓丽"]),
    ],
)
def test_every_sort_order_and_its_reverse(admin_client, four, sort, expected):
    reverse = sort[1:] if sort.startswith("-") else f"-{sort}"
    assert names(admin_client.get("/customers/", {"sort": sort})) == expected
    assert names(admin_client.get("/customers/", {"sort": reverse})) == expected[::-1]


def test_list_is_newest_first_by_default_and_for_an_unknown_sort(admin_client, four):
    newest_first = ["邓丽", "陈晨", "白雪", "阿明"]
    assert names(admin_client.get("/customers/")) == newest_first
    response = admin_client.get("/customers/", {"sort": "password"})
    assert names(response) == newest_first
    assert response.context["sort"] == "-created"


def test_sort_link_of_the_current_column_reverses_it(admin_client, four):
    content = admin_client.get("/customers/", {"sort": "name"}).content.decode()
    assert 'href="?sort=-name" data-sort="ascending"' in content
    content = admin_client.get("/customers/", {"sort": "-name"}).content.decode()
    assert 'href="?sort=name" data-sort="descending"' in content


# Paging -----------------------------------------------------------------------------------


@pytest.fixture
def sixty(db):
    """60 customers with repeated names, companies, statuses and times, to exercise tie-breaks."""
    customers = []
    for i in range(60):
        name = ["张伟", "李娜", "王芳", "刘洋", "陈静"][i % 5]
        company = ["", "Acme", "星辰科技"][i % 3]
        customer = Customer(
            display_name=name,
            company=company,
            status=["lead", "active", "churned"][i % 3],
            created_at=T0 + datetime.timedelta(minutes=i // 3),
            updated_at=T0 - datetime.timedelta(minutes=i // 4),
        )
        for field, value in search_fields(display_name=name, company=company).items():
            setattr(customer, field, value)
        customers.append(customer)
    Customer.objects.bulk_create(customers)
    return customers


LINK = re.compile(r'rel="(next|prev)" href="\?([^"]+)"')


def link(response, rel):
    """The query of the page's Next or Previous link, or None without one."""
    links = dict(LINK.findall(response.content.decode()))
    return html.unescape(links[rel]) if rel in links else None


def follow(client, query, rel):
    return link(client.get(f"/customers/?{query}"), rel)


@pytest.mark.parametrize("sort", list(SORTS))
def test_paging_forward_visits_every_customer_once_in_order(admin_client, sixty, sort):
    ordered = sorted_customers(Customer.objects.all(), sort).order_by(*SORTS[sort])
    expected = list(ordered.values_list("pk", flat=True))
    seen, query = [], f"sort={sort}&size=25"
    while query:
        response = admin_client.get(f"/customers/?{query}")
        page = [c.pk for c in response.context["page"].items]
        assert len(page) == (25 if len(seen) < 50 else 10)
        seen += page
        query = link(response, "next")
    assert seen == expected


def test_paging_back_returns_the_same_pages(admin_client, sixty):
    def page_ids(query):
        return [c.pk for c in admin_client.get(f"/customers/?{query}").context["page"].items]

    first = "sort=name&size=25"
    second = follow(admin_client, first, "next")
    third = follow(admin_client, second, "next")
    assert follow(admin_client, third, "next") is None
    back_to_second = follow(admin_client, third, "prev")
    back_to_first = follow(admin_client, back_to_second, "prev")
    assert page_ids(back_to_second) == page_ids(second)
    assert page_ids(back_to_first) == page_ids(first)
    assert follow(admin_client, first, "prev") is None
    assert "page=2" in back_to_second


def test_page_links_keep_the_search_filters_and_sort(admin_client, sixty):
    query = follow(admin_client, "q=zhang&status=lead&status=active&sort=-company&size=25", "next")
    # 12 张伟 rows, 8 of them lead or active: one page only.
    assert query is None
    query = follow(admin_client, "status=lead&status=active&sort=-company&size=25", "next")
    assert {"status=lead", "status=active", "sort=-company", "size=25"} <= set(query.split("&"))
    second = admin_client.get(f"/customers/?{query}").context["page"].items
    assert len(second) == 15
    assert {c.status for c in second} <= {"lead", "active"}


@pytest.mark.parametrize(("size", "shown"), [("25", 25), ("50", 50), ("100", 60), ("200", 60)])
def test_page_size_is_one_of_the_offered_choices(admin_client, sixty, size, shown):
    response = admin_client.get("/customers/", {"size": size})
    assert len(response.context["page"].items) == shown
    assert f'<option value="{size}" selected>' in response.content.decode()


@pytest.mark.parametrize("size", ["7", "0", "-25", "1000", "many", ""])
def test_a_page_size_not_offered_falls_back_to_fifty(admin_client, sixty, size):
    response = admin_client.get("/customers/", {"size": size})
    assert response.status_code == 200
    assert len(response.context["page"].items) == 50


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "WyJ4Il0",  # ["x"]: one value where the sort needs two
        "WyJub3QgYSB0aW1lIiwibm90IGEgdXVpZCJd",  # ["not a time","not a uuid"]
        "!!!",
    ],
)
def test_a_malformed_page_cursor_is_a_400_with_a_clear_message(admin_client, sixty, cursor):
    for direction in ("after", "before"):
        response = admin_client.get("/customers/", {direction: cursor})
        assert response.status_code == 400
        assert (
            "This page link is not valid. Go back to the first page." in response.content.decode()
        )


def test_a_cursor_of_another_sort_order_is_a_400(admin_client, sixty):
    cursor = admin_client.get("/customers/?sort=name&size=25").context["page"].next_cursor
    response = admin_client.get("/customers/", {"sort": "-created", "after": cursor})
    assert response.status_code == 400


# Count ------------------------------------------------------------------------------------


def test_count_is_exact_below_the_limit(admin_client, sixty, settings):
    settings.CUSTOMER_LIST_EXACT_COUNT_LIMIT = 60
    response = admin_client.get("/customers/", {"q": "张伟"})
    assert (response.context["count"], response.context["estimated"]) == (12, False)
    assert "12 customers" in response.content.decode()
    response = admin_client.get("/customers/")
    assert (response.context["count"], response.context["estimated"]) == (60, False)
    assert "estimated" not in response.content.decode()


def test_count_past_the_limit_is_worded_as_an_estimate(
    admin_client, sixty, settings, planner_expects
):
    settings.CUSTOMER_LIST_EXACT_COUNT_LIMIT = 10
    planner_expects(57)
    response = admin_client.get("/customers/")
    assert (response.context["count"], response.context["estimated"]) == (57, True)
    assert "About 57 customers (estimated)" in response.content.decode()


def test_count_past_the_limit_with_a_lower_estimate_says_more_than_the_limit(
    admin_client, sixty, settings, planner_expects
):
    settings.CUSTOMER_LIST_EXACT_COUNT_LIMIT = 10
    planner_expects(8)
    response = admin_client.get("/customers/")
    assert (response.context["count"], response.context["estimated"]) == (11, True)
    assert "More than 10 customers" in response.content.decode()


def test_count_of_one_is_singular(admin_client, customer):
    assert re.search(r"\b1 customer\b", admin_client.get("/customers/").content.decode())


# htmx -------------------------------------------------------------------------------------


def test_htmx_request_for_the_results_gets_only_the_results_fragment(admin_client, sixty):
    response = admin_client.get(
        "/customers/", {"q": "李娜"}, headers={"HX-Request": "true", "HX-Target": "results"}
    )
    assert response.status_code == 200
    content = response.content.decode().strip()
    assert content.startswith('<div id="results">')
    assert "<html" not in content
    assert 'id="list-form"' not in content
    assert "12 customers" in content
    assert content.count('name="selected"') == 12


def test_htmx_request_for_another_target_gets_the_whole_page(admin_client, sixty):
    response = admin_client.get(
        "/customers/", headers={"HX-Request": "true", "HX-Target": "somewhere-else"}
    )
    assert "<html" in response.content.decode()


def test_plain_request_gets_the_whole_page(admin_client, sixty):
    content = admin_client.get("/customers/").content.decode()
    assert "<html" in content and 'id="results"' in content and 'id="list-form"' in content


def test_anonymous_visitor_is_sent_to_sign_in(client, customer):
    response = client.get("/customers/?q=张伟")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/customers/")
