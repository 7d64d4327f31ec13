from django.contrib import admin


class CimsAdminSite(admin.AdminSite):
    """Django's admin, for administrators only: signing in to CIMS is not enough."""

    site_header = site_title = "CIMS"

    def has_permission(self, request):
        return request.user.is_active and request.user.is_superuser


class AuditedModelAdmin(admin.ModelAdmin):
    """A model admin whose every addition, change and deletion enters the audit trail."""

    def log_addition(self, request, obj, message):
        return _audited(super().log_addition(request, obj, message))

    def log_change(self, request, obj, message):
        return _audited(super().log_change(request, obj, message))

    def log_deletions(self, request, queryset):
        # Deleting several objects at once logs them in one bulk insert, which sends no signal.
        return _audited(super().log_deletions(request, queryset))


def _audited(logged):
    from django.contrib.admin.models import ADDITION, CHANGE, DELETION

    from accounts import audit

    kinds = {ADDITION: "add", CHANGE: "change", DELETION: "delete"}
    for entry in logged if isinstance(logged, list) else [logged]:
        # An entry about a customer goes in their history, its details sealed with the rest.
        about_customer = entry.content_type_id and entry.content_type.natural_key() == (
            "customers",
            "customer",
        )
        audit.record(
            audit.Action.SETTINGS_CHANGE,
            customer=entry.object_id if about_customer and entry.object_id else None,
            data={
                "model": entry.content_type.model if entry.content_type_id else "",
                "object_id": entry.object_id or "",
                "object": entry.object_repr,
                "change": kinds.get(entry.action_flag, ""),
                "message": entry.get_change_message(),
            },
        )
    return logged
