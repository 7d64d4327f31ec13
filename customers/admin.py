from django.contrib import admin

from customers.models import Customer, CustomField, SavedView, Tag


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["display_name", "email", "phone", "company", "status", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["email", "phone", "display_name"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at", "created_by", "updated_by", "version"]
    show_full_result_count = False  # an exact count of a million rows on every page is slow


@admin.register(CustomField)
class CustomFieldAdmin(admin.ModelAdmin):
    list_display = ["key", "label", "label_en", "type", "required", "active", "position"]
    list_editable = ["position", "active"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "updated_at"]
    raw_id_fields = ["user"]
