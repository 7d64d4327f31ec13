"""Saved reports and the pivot. The pivot needs reports.view_analysis (administrators and
managers); its export also customers.export_customers. Saved reports are seen by their owner
and those they are shared with (404 for everyone else); only the owner, with the role's
permission to change or delete reports, may change, share or delete one (403 for those it is
shared with). The report here belongs to `manager` and is shared with the team `manager`,
`staff` and `viewer` are in."""

from tests.core.matrix import OK, SIGNED_IN, both, every, get, post

ANALYSTS = every(403, admin=OK, manager=OK)
SEE_REPORT = every(404, manager=OK, staff=OK, viewer=OK)
OWN_REPORT = every(404, manager=OK, staff=403, viewer=403)

RULES = {
    "analysis:pivot": get(ANALYSTS),
    "analysis:export": get(ANALYSTS),
    "analysis:save": post(ANALYSTS),
    "reports:index": get(SIGNED_IN),
    "reports:create": both(ANALYSTS),
    "reports:detail": get(SEE_REPORT),
    "reports:edit": both(OWN_REPORT),
    "reports:share": both(OWN_REPORT),
    "reports:delete": both(OWN_REPORT),
    # Exports need customers.export_customers, which staff and viewers lack.
    "reports:export": get(every(404, manager=OK, staff=403, viewer=403)),
    "reports:generate": post(every(404, manager=OK, staff=403, viewer=403)),
}


def make_objects(objects, users):
    from reports.models import SavedReport

    report = SavedReport.objects.create(
        name="Customers by province",
        definition={"source": "customers", "group_by": ["province"]},
        owner=users["manager"],
    )
    report.shared_with_groups.add(objects["customer"].team.group)
    return {"saved_report": report}


def url_kwargs(name, objects):
    if name.startswith("reports:") and name not in ("reports:index", "reports:create"):
        return {"pk": objects["saved_report"].pk}
    return None
