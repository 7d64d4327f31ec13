"""Customer imports: for administrators and managers; an import is seen by its importer and
by administrators (another manager gets a 404)."""

from customers.models import CustomerImport
from tests.core.matrix import every, get, post

IMPORTERS = every(403, admin="ok", manager="ok")
# The import below is the manager's: other importers do not see it, others may not import.
OWN_IMPORT = every(403, admin="ok", manager="ok")

RULES = {
    "imports:list": get(IMPORTERS),
    "imports:upload": {"GET": IMPORTERS, "POST": IMPORTERS},
    "imports:detail": get(OWN_IMPORT),
    "imports:mapping": {"GET": OWN_IMPORT, "POST": OWN_IMPORT},
    "imports:check": post(OWN_IMPORT),
    "imports:run": post(OWN_IMPORT),
    # No report has been written yet: a 404 for those who may see the import.
    "imports:report": get(every(403, admin=404, manager=404)),
    "imports:revert": {"GET": OWN_IMPORT, "POST": OWN_IMPORT},
}


def make_objects(objects, users):
    job = CustomerImport.objects.create(
        user=users["manager"],
        file_name="customers.csv",
        file_format="csv",
        headers=["姓名", "手机"],
        sample=[["王芳", "13900139000"]],
    )
    return {"customer_import": job}


def url_kwargs(name, objects):
    if name.startswith("imports:") and name not in ("imports:list", "imports:upload"):
        return {"pk": objects["customer_import"].pk}
    return None
