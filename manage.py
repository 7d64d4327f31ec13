#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cims.settings")
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        # Beside `make run` (or without it) commands use the embedded servers under var/.
        from cims import embedded

        for name in embedded.start_missing():
            print(
                f"Started the embedded {name} under var/ (stop it with `make stop`).",
                file=sys.stderr,
            )
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
