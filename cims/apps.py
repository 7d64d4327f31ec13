from django.contrib.admin.apps import AdminConfig


class CimsAdminConfig(AdminConfig):
    default_site = "cims.admin.CimsAdminSite"
