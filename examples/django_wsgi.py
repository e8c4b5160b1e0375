"""WSGI entry point for djangoshop (kept apart: settings must not import it)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoshop")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
