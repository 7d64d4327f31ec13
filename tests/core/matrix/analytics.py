"""Customer analytics: the page for those with reports.view_analysis (administrators and
managers), its refresh for those with reports.refresh_metrics (the same roles)."""

from tests.core.matrix import OK, every, get, post

ANALYSTS = every(403, admin=OK, manager=OK)

RULES = {
    "analytics:customers": get(ANALYSTS),
    # POST queues a refresh (or finds the one waiting) and redirects to its progress.
    "analytics:refresh_start": post(ANALYSTS),
    "analytics:refresh": get(ANALYSTS),
}


def make_objects(objects, users):
    from reports.models import MetricsRefresh

    return {"metrics_refresh": MetricsRefresh.objects.create(requested_by=users["manager"])}


def url_kwargs(name, objects):
    if name == "analytics:refresh":
        return {"pk": objects["metrics_refresh"].pk}
    return None
