from django.shortcuts import render
from django.views.decorators.http import require_GET

from reports.dashboard import dashboard_for


@require_GET
def dashboard(request):
    # Every signed-in user (LoginRequiredMiddleware) has a dashboard: its figures cover the
    # customers they may see (none for those who see no customers).
    board = dashboard_for(request.user)
    return render(request, "reports/dashboard.html", {"board": board, "charts": board.charts()})
