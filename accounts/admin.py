from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import Team, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        (_("CIMS"), {"fields": ("language",)}),
    )


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    search_fields = ["name"]
