"""Example saved reports for the demo data (seed_demo)."""

from django.db import transaction

from reports import reporting
from reports.models import SavedReport

DEMO_REPORTS = [
    (
        "Customers by province",
        SavedReport.Kind.REPORT,
        {
            "source": "customers",
            "group_by": ["province"],
            "aggregates": [{"func": "count"}, {"func": "sum", "field": "revenue"}],
            "sort": {"key": "count", "desc": True},
            "chart": "bar",
        },
    ),
    (
        "Revenue by channel per month",
        SavedReport.Kind.REPORT,
        {
            "source": "orders",
            "group_by": ["ordered_month", "channel"],
            "aggregates": [{"func": "count"}, {"func": "sum", "field": "amount"}],
            "filters": [{"field": "ordered_at", "op": "last_days", "value": "365"}],
        },
    ),
    (
        "Top customers by lifetime value",
        SavedReport.Kind.REPORT,
        {
            "source": "customers",
            "columns": [
                "name",
                "province",
                "city",
                "segment",
                "orders",
                "revenue",
                "last_order_at",
            ],
            "sort": {"key": "revenue", "desc": True},
            "limit": 100,
        },
    ),
    (
        "Customers by segment and age band",
        SavedReport.Kind.ANALYSIS,
        {"params": {"rows": ["segment"], "cols": ["age_band"], "measure": ["customers"]}},
    ),
]


def create_demo_reports(*, manager):
    """The example reports, owned by `manager`; those that exist are left as they are."""
    made = []
    with transaction.atomic():
        for name, kind, definition in DEMO_REPORTS:
            if kind == SavedReport.Kind.REPORT:
                definition = reporting.validate_definition(definition)
            report, _created = SavedReport.objects.get_or_create(
                owner=manager, name=name, defaults={"kind": kind, "definition": definition}
            )
            made.append(report)
    return made
