"""Error pages that say what went wrong in the user's language, and never more than that."""

from django.core.exceptions import BadRequest
from django.shortcuts import render


def bad_request(request, exception):
    # Our own BadRequest messages are written for users; other 400s (a forged Host header,
    # an oversized body) may echo request details, so they get the generic text.
    message = str(exception) if type(exception) is BadRequest and str(exception) else None
    return render(request, "400.html", {"message": message}, status=400)


def permission_denied(request, exception):
    return render(request, "403.html", status=403)


def page_not_found(request, exception):
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)
