from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.permissions import can, visible_customers
from cims.admin import AuditedModelAdmin
from customers.masking import SENSITIVE_FIELDS
from customers.models import Customer, CustomField, Erasure, RetentionRule, SavedView, Tag


@admin.register(Customer)
class CustomerAdmin(AuditedModelAdmin):
    # Sensitive fields are left out of the admin altogether: the app's pages mask them and
    # record every look at one.
    list_display = ["display_name", "company", "status", "owner", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["display_name", "company"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at", "created_by", "updated_by", "version"]
    exclude = SENSITIVE_FIELDS
    show_full_result_count = False  # an exact count of a million rows on every page is slow

    def get_queryset(self, request):
        return visible_customers(request.user, super().get_queryset(request))

    def has_view_permission(self, request, obj=None):
        return obj is None or can(request.user, "view", obj)

    def has_change_permission(self, request, obj=None):
        return obj is None or can(request.user, "change", obj)

    def has_delete_permission(self, request, obj=None):
        return obj is None or can(request.user, "delete", obj)


@admin.register(CustomField)
class CustomFieldAdmin(AuditedModelAdmin):
    list_display = ["key", "label", "label_en", "type", "required", "active", "position"]
    list_editable = ["position", "active"]


@admin.register(Tag)
class TagAdmin(AuditedModelAdmin):
    search_fields = ["name"]


@admin.register(SavedView)
class SavedViewAdmin(AuditedModelAdmin):
    list_display = ["name", "user", "updated_at"]
    raw_id_fields = ["user"]


@admin.register(RetentionRule)
class RetentionRuleAdmin(AuditedModelAdmin):
    list_display = ["kind", "enabled", "days", "last_run_at", "last_count"]
    list_editable = ["enabled", "days"]
    readonly_fields = ["last_run_at", "last_count"]
    actions = ["dry_run"]

    @admin.action(description=_("Dry run: count what the selected rules would touch"))
    def dry_run(self, request, queryset):
        from customers import retention

        for result in retention.apply_rules(dry_run=True, kinds=[r.kind for r in queryset]):
            self.message_user(
                request,
                ngettext(
                    "%(rule)s: %(count)s record would be affected.",
                    "%(rule)s: %(count)s records would be affected.",
                    result.matching,
                )
                % {"rule": result.rule, "count": result.matching},
            )


@admin.register(Erasure)
class ErasureAdmin(admin.ModelAdmin):
    """The record of erasures, to read: it is written only by customers.erasure."""

    list_display = ["customer_id", "erased_at", "erased_by_username", "reason", "rule"]
    list_filter = ["reason"]
    search_fields = ["=customer_id"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
