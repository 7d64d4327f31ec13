from django.contrib import admin


class CimsAdminSite(admin.AdminSite):
    """Django's admin, for administrators only: signing in to CIMS is not enough."""

    site_header = site_title = "CIMS"

    def has_permission(self, request):
        return request.user.is_active and request.user.is_superuser
