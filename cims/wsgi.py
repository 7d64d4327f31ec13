import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cims.settings")
application = get_wsgi_application()

# What is loaded at start-up (Django, the URLconf, pypinyin's dictionaries of several million
# objects) lives as long as the process. Left to the garbage collector, each full collection
# walks all of it and stalls a request for 100-200 ms; frozen, it is never walked.
gc.freeze()
