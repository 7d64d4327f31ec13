from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = _("Customers")

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from accounts.models import Team

        # Importing connects the receivers that, after a restore, re-apply erasures and make
        # the partitions made since the backup.
        from customers import erasure, partitions  # noqa: F401
        from customers.filters import forget_filter_options
        from customers.models import CustomField, Tag

        for model in (get_user_model(), Team, CustomField, Tag):
            post_save.connect(forget_filter_options, sender=model)
            post_delete.connect(forget_filter_options, sender=model)
