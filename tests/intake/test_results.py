"""Survey results: figures computed in the database, filters, free text, and the Excel export."""

import datetime
import io
import zoneinfo

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.audit import Action, AuditEntry
from customers.models import Customer
from intake import results
from intake.models import Form, FormField, Submission

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
T = FormField.Type

QUESTIONS = [
    (
        "plan",
        T.CHOICE,
        [
            {"value": "gold", "label": "金卡", "label_en": "Gold"},
            {"value": "silver", "label": "银卡", "label_en": "Silver"},
            {"value": "bronze", "label": "铜卡", "label_en": "Bronze"},
        ],
    ),
    (
        "interests",
        T.MULTI_CHOICE,
        [
            {"value": "tea", "label": "茶", "label_en": "Tea"},
            {"value": "wine", "label": "酒", "label_en": "Wine"},
            {"value": "golf", "label": "高尔夫", "label_en": "Golf"},
        ],
    ),
    ("returning", T.BOOLEAN, []),
    ("marketing", T.CONSENT, []),
    ("satisfaction", T.RATING, []),
    ("recommend", T.NPS, []),
    ("visits", T.NUMBER, []),
    ("comment", T.LONG_TEXT, []),
    ("email", T.EMAIL, []),
]


@pytest.fixture
def survey(db):
    form = Form.objects.create(
        kind=Form.Kind.SURVEY,
        slug="satisfaction-2026",
        title="满意度调查",
        title_en="Satisfaction survey",
        published_at=timezone.now(),
    )
    FormField.objects.bulk_create(
        FormField(
            form=form,
            key=key,
            type=type_,
            label=key,
            label_en=key.title(),
            choices=choices,
            position=position,
        )
        for position, (key, type_, choices) in enumerate(QUESTIONS)
    )
    return form


@pytest.fixture
def submit(survey):
    """submit(answers, private=None, **values) -> a counted submission of the survey."""

    def make(answers, private=None, **values):
        values.setdefault("state", Submission.State.DONE)
        return Submission.objects.create(
            form=survey, answers=answers, private_answers=private or {}, **values
        )

    return make


@pytest.fixture
def answered(submit):
    """Five submissions with known answers, and one pending (unverified) one."""
    submit(
        {
            "plan": "gold",
            "interests": ["tea", "wine"],
            "returning": True,
            "marketing": True,
            "satisfaction": 5,
            "recommend": 10,
            "visits": 3,
        },
        {"comment": "很好", "email": "a@example.com"},
    )
    submit(
        {
            "plan": "gold",
            "interests": ["tea"],
            "returning": False,
            "marketing": False,
            "satisfaction": 4,
            "recommend": 9,
            "visits": 1.5,
        }
    )
    submit(
        {
            "plan": "silver",
            "interests": [],
            "returning": True,
            "marketing": True,
            "satisfaction": 3,
            "recommend": 7,
            "visits": 10,
        }
    )
    submit({"plan": "gold", "marketing": False, "satisfaction": 1, "recommend": 2})
    # Unanswered questions are left out of the answers altogether.
    submit({"marketing": False}, channel="store", state=Submission.State.RECEIVED)
    submit({"plan": "bronze", "satisfaction": 5, "recommend": 10}, state=Submission.State.PENDING)


def figures(survey, **filters):
    summary = results.form_results(survey, results.counted_submissions(survey, filters))
    return summary, {q.key: q for q in summary.questions}


def counts(question):
    return {row.value: row.count for row in question.rows}


def test_single_choice_distribution_counts_each_option_once(survey, answered):
    summary, by_key = figures(survey)
    plan = by_key["plan"]
    assert summary.total == 5
    assert plan.answered == 4
    assert counts(plan) == {"gold": 3, "silver": 1, "bronze": 0}
    assert [row.percent for row in plan.rows] == [75.0, 25.0, 0.0]


def test_multiple_choice_shares_are_of_those_who_answered(survey, answered):
    _summary, by_key = figures(survey)
    interests = by_key["interests"]
    # An empty list is no answer: two submissions chose something.
    assert interests.answered == 2
    assert counts(interests) == {"tea": 2, "wine": 1, "golf": 0}
    assert [row.percent for row in interests.rows] == [100.0, 50.0, 0.0]


def test_yes_no_and_consent_count_both_answers(survey, answered):
    _summary, by_key = figures(survey)
    assert counts(by_key["returning"]) == {"true": 2, "false": 1}
    assert counts(by_key["marketing"]) == {"true": 2, "false": 3}
    assert by_key["marketing"].answered == 5


def test_rating_lists_every_score_with_the_average(survey, answered):
    _summary, by_key = figures(survey)
    rating = by_key["satisfaction"]
    assert counts(rating) == {"1": 1, "2": 0, "3": 1, "4": 1, "5": 1}
    assert rating.average == 3.25  # (5 + 4 + 3 + 1) / 4


def test_net_promoter_score_is_promoters_minus_detractors(survey, answered):
    _summary, by_key = figures(survey)
    nps = by_key["recommend"].nps
    # 10 and 9 promote, 7 is passive, 2 detracts: (2 - 1) / 4 = 25 %.
    assert (nps.promoters, nps.passives, nps.detractors) == (2, 1, 1)
    assert nps.score == 25
    assert [percent for _name, _count, percent in nps.groups] == [25.0, 25.0, 50.0]


def test_net_promoter_score_can_be_negative(survey, submit):
    for score in (0, 3, 6, 9):
        submit({"recommend": score})
    _summary, by_key = figures(survey)
    assert by_key["recommend"].nps.score == -50


def test_numbers_give_count_minimum_average_and_maximum(survey, answered, submit):
    submit({"visits": "many"})  # not a number: not counted, and no error
    _summary, by_key = figures(survey)
    number = by_key["visits"].number
    assert number.count == 3
    assert (number.minimum, number.maximum) == (1.5, 10.0)
    assert number.average == pytest.approx(14.5 / 3)


def test_answers_to_removed_options_still_count(survey, submit):
    submit({"plan": "platinum"})
    _summary, by_key = figures(survey)
    assert counts(by_key["plan"])["platinum"] == 1


def test_pending_submissions_are_not_counted(survey, submit):
    submit({"plan": "gold"}, state=Submission.State.PENDING)
    submit({"plan": "gold"}, state=Submission.State.REVIEW)
    summary, by_key = figures(survey)
    assert summary.total == 1
    assert counts(by_key["plan"])["gold"] == 1


def test_date_range_uses_days_in_the_configured_time_zone(survey, submit):
    # 23:30 on 1 March in Shanghai is still 1 March there, though 15:30 UTC.
    late = datetime.datetime(2026, 3, 1, 23, 30, tzinfo=SHANGHAI)
    submit({"plan": "gold"}, created_at=late)
    submit({"plan": "silver"}, created_at=late + datetime.timedelta(hours=1))
    day = datetime.date(2026, 3, 1)
    summary, by_key = figures(survey, submitted_from=day, submitted_to=day)
    assert summary.total == 1
    assert counts(by_key["plan"])["gold"] == 1
    summary, _ = figures(survey, submitted_from=day + datetime.timedelta(days=1))
    assert summary.total == 1


def test_channel_filter_counts_one_channel(survey, answered):
    summary, by_key = figures(survey, channel="store")
    assert summary.total == 1
    assert counts(by_key["marketing"]) == {"true": 0, "false": 1}


def test_figures_take_a_few_queries_however_many_submissions(
    survey, submit, django_assert_max_num_queries
):
    for n in range(40):
        submit({"plan": "gold", "interests": ["tea"], "satisfaction": 1 + n % 5, "visits": n})
    # Fields, the count, and one query each for single answers, multiple choices and numbers.
    with django_assert_max_num_queries(5):
        summary, by_key = figures(survey)
    assert summary.total == 40
    assert by_key["satisfaction"].average == 3.0


# The page --------------------------------------------------------------------------------


def results_url(survey, **query):
    url = reverse("intake:form_results", args=[survey.pk])
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode(query)
    return url


def test_staff_see_the_figures_as_tables_and_chart_data(staff_client, survey, answered, english):
    response = staff_client.get(results_url(survey))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Results: Satisfaction survey" in page
    assert 'id="chart-plan"' in page
    assert 'id="results-charts"' in page
    assert "3.25" in page  # the average rating
    charts = {c["id"]: c for c in response.context["charts"]}
    assert charts["chart-plan"]["counts"] == [3, 1, 0]
    assert charts["chart-recommend"]["kind"] == "nps"
    # The page says which submissions count.
    assert "not counted" in page


def test_free_text_is_hidden_from_staff_who_do_not_build_forms(staff_client, survey, answered):
    response = staff_client.get(results_url(survey))
    page = response.content.decode()
    assert "很好" not in page
    assert "a@example.com" not in page
    assert response.context["may_read_text"] is False


def test_form_builders_read_free_text_decrypted(manager_client, survey, answered):
    response = manager_client.get(results_url(survey))
    page = response.content.decode()
    assert "很好" in page
    assert "a@example.com" in page


def test_answers_link_only_to_customers_the_user_may_see(
    manager_client, survey, submit, customer, staff2, teams
):
    # The manager manages the team of `customer`, not that of staff2's customer.
    hidden = Customer.objects.create(display_name="隐藏客户", owner=staff2, team=teams[1])
    submit({}, {"comment": "visible one"}, customer=customer)
    submit({}, {"comment": "hidden one"}, customer=hidden)
    page = manager_client.get(results_url(survey)).content.decode()
    assert reverse("customers:detail", args=[customer.pk]) in page
    assert customer.display_name in page
    assert str(hidden.pk) not in page
    assert "隐藏客户" not in page
    assert "hidden one" in page


def test_written_answers_are_paged_by_key_not_offset(manager_client, survey, submit):
    start = timezone.now() - datetime.timedelta(days=1)
    for n in range(results.TEXT_PAGE_SIZE + 5):
        submit({}, {"comment": f"answer {n:02d}"}, created_at=start + datetime.timedelta(minutes=n))
    first = manager_client.get(results_url(survey))
    page = first.context["text_page"]
    assert len(page.items) == results.TEXT_PAGE_SIZE
    assert page.items[0].answers[0] == "answer 29"  # newest first
    second = manager_client.get(results_url(survey, after=page.next_cursor))
    rest = [row.answers[0] for row in second.context["text_page"].items]
    assert rest == [f"answer {n:02d}" for n in range(4, -1, -1)]
    assert manager_client.get(results_url(survey, after="not-a-cursor")).status_code == 400


def test_filters_narrow_the_page(staff_client, survey, answered):
    response = staff_client.get(results_url(survey, channel="store"))
    assert response.context["results"].total == 1


def test_a_reversed_date_range_is_an_error_beside_the_field(staff_client, survey, english):
    response = staff_client.get(
        results_url(survey, submitted_from="2026-03-02", submitted_to="2026-03-01")
    )
    assert response.status_code == 400
    assert "The end of the range is before its start." in response.content.decode()


def test_viewer_may_not_see_results(client, viewer, survey):
    client.force_login(viewer)
    assert client.get(results_url(survey)).status_code == 403


def test_results_of_an_unknown_form_are_404(staff_client):
    import uuid

    assert staff_client.get(reverse("intake:form_results", args=[uuid.uuid4()])).status_code == 404


def test_results_page_is_read_only(staff_client, survey):
    assert staff_client.post(results_url(survey)).status_code == 405


# The Excel export ------------------------------------------------------------------------


def export(client, survey, **query):
    url = reverse("intake:form_results_export", args=[survey.pk])
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode(query)
    return client.get(url)


def workbook_of(response):
    assert response.status_code == 200, response
    assert response["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def test_export_has_the_figures_and_every_answer(manager_client, survey, answered, english):
    book = workbook_of(export(manager_client, survey))
    summary, answers = book.worksheets
    assert summary.title == "Summary" and answers.title == "Answers"
    header = [c.value for c in answers[1]]
    assert header[:3] == ["Submitted at", "Channel", "Event"]
    assert "Comment" in header and "Email" in header
    assert answers.freeze_panes == "A2"
    assert answers.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}6"
    assert answers["A1"].font.bold
    rows = list(answers.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 5
    column = {name: index for index, name in enumerate(header)}
    first = rows[0]
    assert isinstance(first[column["Submitted at"]], datetime.datetime)
    assert first[column["Plan"]] == "Gold"
    assert first[column["Interests"]] == "Tea; Wine"
    assert first[column["Satisfaction"]] == 5
    assert first[column["Visits"]] == 3
    assert first[column["Comment"]] == "很好"
    # The figures sheet holds numbers, too.
    figures_rows = list(summary.iter_rows(min_row=2, values_only=True))
    assert ("Plan", "Gold", 3, 0.75, None) in figures_rows
    assert ("Recommend", "Net Promoter Score", None, None, 25) in figures_rows


def test_export_leaves_out_free_text_for_staff_who_do_not_build_forms(
    staff_client, survey, answered, english
):
    book = workbook_of(export(staff_client, survey))
    header = [c.value for c in book["Answers"][1]]
    assert "Comment" not in header and "Email" not in header
    values = [v for row in book["Answers"].iter_rows(values_only=True) for v in row]
    assert "很好" not in values


def test_export_writes_formula_like_text_as_text(manager_client, survey, submit, english):
    submit({}, {"comment": '=HYPERLINK("http://evil.example","x")'})
    submit({}, {"comment": "+86 138"})
    submit({}, {"comment": "@SUM(A1)"})
    book = workbook_of(export(manager_client, survey))
    sheet = book["Answers"]
    column = [c.value for c in sheet[1]].index("Comment") + 1
    cells = [sheet.cell(row=r, column=column) for r in range(2, 5)]
    assert {c.value for c in cells} == {
        '=HYPERLINK("http://evil.example","x")',
        "+86 138",
        "@SUM(A1)",
    }
    assert all(c.data_type == "s" for c in cells)
    assert all(c.quotePrefix for c in cells)


def test_export_is_recorded_in_the_audit_trail(manager_client, survey, answered, manager):
    export(manager_client, survey, channel="store")
    entry = AuditEntry.objects.filter(action=Action.EXPORT).latest("seq")
    assert entry.actor_id == manager.pk
    assert entry.object_id == str(survey.pk)
    assert entry.data == {
        "form": "satisfaction-2026",
        "filters": {"channel": "store"},
        "rows": 1,
        "free_text": True,
    }


def test_export_over_the_row_limit_asks_for_a_shorter_range(
    staff_client, survey, answered, settings, english
):
    settings.INTAKE_EXPORT_MAX_ROWS = 4
    response = export(staff_client, survey)
    assert response.status_code == 302
    assert response["Location"].startswith(results_url(survey))
    assert not AuditEntry.objects.filter(action=Action.EXPORT).exists()
    followed = staff_client.get(response["Location"])
    assert "Choose a shorter date range." in followed.content.decode()


def test_export_is_forbidden_to_viewers(client, viewer, survey):
    client.force_login(viewer)
    assert export(client, survey).status_code == 403


# Spreadsheet cells -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1", "@A1", "\tcmd", "\rcmd", "#N/A"])
def test_safe_cell_keeps_formula_like_text_as_text(text):
    from intake.spreadsheets import new_workbook, safe_cell

    book = new_workbook()
    sheet = book.create_sheet("s")
    cell = safe_cell(sheet, text)
    assert cell.data_type == "s"
    assert cell.value == text
    assert cell.quotePrefix == text.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_safe_cell_round_trip_keeps_types(tmp_path):
    from intake.spreadsheets import new_workbook, safe_cell

    moment = datetime.datetime(2026, 3, 1, 15, 30, tzinfo=datetime.UTC)
    values = [12, 2.5, True, moment, datetime.date(2026, 3, 2), "=1+2", "a\x00b\x07c", "x" * 40_000]
    book = new_workbook()
    sheet = book.create_sheet("s")
    sheet.append([safe_cell(sheet, value) for value in values])
    book.save(tmp_path / "cells.xlsx")
    row = next(openpyxl.load_workbook(tmp_path / "cells.xlsx")["s"].iter_rows())
    assert [c.data_type for c in row[:3]] == ["n", "n", "b"]
    assert [c.value for c in row[:3]] == [12, 2.5, True]
    # Times are written in the configured time zone, as spreadsheets know none.
    assert row[3].value == datetime.datetime(2026, 3, 1, 23, 30)
    assert row[3].is_date and row[4].is_date
    assert row[5].value == "=1+2" and row[5].data_type == "s"
    assert row[6].value == "abc"  # characters a workbook cannot hold are dropped
    assert len(row[7].value) == 32_767
