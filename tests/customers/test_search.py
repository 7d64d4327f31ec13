"""The list's one search box: Chinese names, pinyin, email, phone and company."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

EVERYONE = {"张伟", "张明伟", "李娜", "黎明", "王小明", "John Smith"}


@pytest.fixture
def people(customer, make_customer):
    """张伟 (from the customer fixture) and five others who differ from him in one way each."""
    make_customer(
        "张明伟",
        family_name="张",
        given_name="明伟",
        phone="+8613700001111",
        company="杭州明伟茶叶",
    )
    make_customer(
        "李娜",
        family_name="李",
        given_name="娜",
        email="li.na@shop.cn",
        phone="+8613912345678",
        company="北京星辰科技",
    )
    make_customer("黎明", family_name="黎", given_name="明", phone="+8618600002222")
    make_customer(
        "王小明",
        family_name="王",
        given_name="小明",
        email="wxm@example.org",
        phone="+8618612348000",
    )
    make_customer(
        "John Smith",
        family_name="Smith",
        given_name="John",
        email="john@acme.com",
        company="Acme Corp",
    )


def found(client, q):
    response = client.get("/customers/", {"q": q})
    assert response.status_code == 200, response.content[:500]
    return {c.display_name for c in response.context["page"].items}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("张伟", {"张伟"}),
        ("王小明", {"王小明"}),
        ("小明", {"王小明"}),
        ("明伟", {"张明伟"}),
        ("华东", {"张伟"}),
        ("星辰科技", {"李娜"}),
        ("张", {"张伟", "张明伟"}),
    ],
)
def test_staff_finds_customers_by_chinese_name_fragment_or_company(
    admin_client, people, q, expected
):
    assert found(admin_client, q) == expected


def test_staff_finds_customer_by_full_pinyin_with_a_space(admin_client, people):
    result = found(admin_client, "zhang wei")
    assert "张伟" in result
    # 张明伟 has both syllables too; nobody without them may match.
    assert result <= {"张伟", "张明伟"}


@pytest.mark.parametrize(
    ("q", "expected"),
    [("wei zhang", {"张伟", "张明伟"}), ("ming li", {"黎明"}), ("li na", {"李娜"})],
)
def test_pinyin_syllables_typed_apart_find_names_with_all_of_them_in_any_order(
    admin_client, people, q, expected
):
    assert found(admin_client, q) == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("zhangwei", {"张伟"}),
        ("ZhangWei", {"张伟"}),
        ("zw", {"张伟"}),
        ("zmw", {"张明伟"}),
        ("wangxiaoming", {"王小明"}),
        ("li", {"李娜", "黎明"}),
        ("john", {"John Smith"}),
        ("smith", {"John Smith"}),
        ("acme", {"John Smith"}),
    ],
)
def test_staff_finds_customers_by_pinyin_compact_initials_syllable_or_latin_name(
    admin_client, people, q, expected
):
    assert found(admin_client, q) == expected


@pytest.mark.parametrize("q", ["li.na@shop.cn", "LI.NA@SHOP.CN", " Li.Na@Shop.cn "])
def test_staff_finds_customer_by_their_whole_email_in_any_case(admin_client, people, q):
    assert found(admin_client, q) == {"李娜"}


@pytest.mark.parametrize("q", ["@shop.cn", "li.na@", "@example.", "shop.cn"])
def test_part_of_an_email_finds_nobody_as_emails_are_encrypted(admin_client, people, q):
    assert found(admin_client, q) == set()


@pytest.mark.parametrize(
    "q",
    [
        "13800138000",
        "138 0013 8000",
        "+86 138 0013 8000",
        "+8613800138000",
        "138-0013-8000",
        "+86-138-0013-8000",
    ],
)
def test_staff_finds_customer_by_phone_in_any_format(admin_client, people, q):
    assert found(admin_client, q) == {"张伟"}


def test_staff_finds_customers_by_the_last_four_digits_of_their_phone(admin_client, people):
    assert found(admin_client, "8000") == {"张伟", "王小明"}
    assert found(admin_client, "5678") == {"李娜"}


def test_search_that_matches_nobody_says_so(admin_client, people):
    response = admin_client.get("/customers/", {"q": "欧阳"})
    assert response.status_code == 200
    assert list(response.context["page"].items) == []
    assert "No customers match." in response.content.decode()


def test_empty_search_lists_everyone(admin_client, people):
    assert found(admin_client, "   ") == EVERYONE


def test_full_width_characters_are_searched_as_half_width(admin_client, people):
    assert found(admin_client, "ＺＨＡＮＧＷＥＩ") == {"张伟"}
