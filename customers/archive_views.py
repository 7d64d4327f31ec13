"""The archive of inactive customers: an archived customer's page and restoring them."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts import audit, permissions
from accounts.permissions import archived_customer_actions, get_archived_customer_for
from customers import archiving, places
from customers.masking import SENSITIVE_FIELDS, mask
from customers.views import attribute_rows


@require_GET
def archived_detail(request, pk):
    archived = get_archived_customer_for(request.user, pk, "view")
    can_restore = "change" in archived_customer_actions(request.user, archived)
    can_erase = permissions.can_erase_archived(request.user, archived) and not archived.erasure
    see_access = permissions.can_see_access(request.user, archived)
    context = {
        "customer": archived,
        # Read-only: sensitive values are shown masked; restoring the customer makes them
        # revealable again, with the usual record of who looked.
        "masked": {f: mask(f, getattr(archived, f)) for f in SENSITIVE_FIELDS},
        "country": places.country_name(archived.country),
        "attributes": attribute_rows(archived),
        "summary": archived.order_summary(),
        "consents": archived.current_consents(),
        "entries": archived.timeline(),
        "can_restore": can_restore,
        "can_erase": can_erase,
        "history": audit.customer_history(archived) if see_access or can_restore else None,
    }
    return render(request, "customers/archived_detail.html", context)


@require_POST
def archived_restore(request, pk):
    archived = get_archived_customer_for(request.user, pk, "change")
    try:
        restored = archiving.restore_customer(archived, user=request.user)
    except archiving.RestoreRefused as refusal:
        messages.error(request, str(refusal))
        return redirect(archived.get_absolute_url())
    messages.success(
        request,
        _("%(name)s is back among the live customers, with %(count)s history entries.")
        % {"name": restored.customer, "count": restored.interactions + restored.orders},
    )
    if restored.dropped:
        messages.warning(
            request,
            _(
                "Some shares or submitted changes could not come back because what they "
                "referred to was deleted meanwhile."
            ),
        )
    return redirect(restored.customer.get_absolute_url())
