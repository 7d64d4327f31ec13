"""Generated files are their owner's alone (anyone else gets a 404); exporting the customer
list needs customers.export_customers (administrators and managers)."""

from reports.models import GeneratedFile
from tests.core.matrix import OK, every, get, post

OWN_FILE = every(404, manager=OK)
EXPORTERS = every(403, admin=OK, manager=OK)

RULES = {
    "files:list": get(every(OK)),
    "files:detail": get(OWN_FILE),
    "files:download": get(OWN_FILE),
    "files:retry": post(OWN_FILE),
    "files:delete": post(OWN_FILE),
    # Without a format both methods are a bad request (400) for those who may export.
    "files:export_customers": {"GET": EXPORTERS, "POST": EXPORTERS},
}


def make_objects(objects, users):
    generated = GeneratedFile.objects.create(
        owner=users["manager"],
        title="客户",
        format="csv",
        spec={"kind": "test", "columns": [["名称", "text"]], "rows": [["张伟"]]},
    )
    generated.build()
    return {"generated_file": generated}


def url_kwargs(name, objects):
    if name in ("files:detail", "files:download", "files:retry", "files:delete"):
        return {"pk": objects["generated_file"].pk}
    return None
