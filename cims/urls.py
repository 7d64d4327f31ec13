from django.contrib import admin
from django.urls import include, path

from cims import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("accounts/", include("accounts.urls")),
    path("customers/import/", include("customers.import_urls")),
    path("customers/duplicate-pairs/", include("customers.duplicate_urls")),
    path("customers/", include("customers.urls")),
    path("", include("intake.urls")),
    path("privacy/", include("customers.consent_urls")),
    path("dashboard/", include("reports.dashboard_urls")),
    path("reports/analysis/", include("reports.analysis_urls")),
    path("reports/customers/", include("reports.analytics_urls")),
    path("reports/files/", include("reports.file_urls")),
    path("reports/schedules/", include("reports.schedule_urls")),
    path("reports/", include("reports.urls")),
    path("manage/", include("accounts.manage_urls")),
    path("audit/", include("accounts.audit_urls")),
    path("admin/", admin.site.urls),
]

handler400 = "cims.errors.bad_request"
handler403 = "cims.errors.permission_denied"
handler404 = "cims.errors.page_not_found"
handler500 = "cims.errors.server_error"
