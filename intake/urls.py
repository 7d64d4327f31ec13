from django.urls import path  # noqa: F401

app_name = "intake"

urlpatterns = [
    # Public pages: forms and surveys at /f/<slug>/, and their verification.
    # Staff: the form builder and surveys' results.
    # Staff: submitted changes to review.
    # Staff: quick entry in stores and at expos, and forms filled on a customer's behalf.
]
