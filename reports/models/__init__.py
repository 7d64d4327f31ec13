"""The reports app's models, one module per concern."""

from reports.models.delivery import *  # noqa: F403
from reports.models.files import *  # noqa: F403
from reports.models.metrics import *  # noqa: F403
from reports.models.saved import *  # noqa: F403
from reports.models.summaries import *  # noqa: F403
