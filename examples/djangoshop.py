"""The shop as a single-module Django project (settings, URLs and views in one file).

    DJANGO_SETTINGS_MODULE=djangoshop \\
    opentelemetry-instrument gunicorn --chdir examples django_wsgi:application
"""

from __future__ import annotations

import time

from django.http import HttpResponse
from django.urls import path

DEBUG = False
SECRET_KEY = "example-only-not-secret"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
MIDDLEWARE: list = []
INSTALLED_APPS: list = []
DATABASES: dict = {}
USE_TZ = True


def index(request):
    return HttpResponse("ok\n")


def report(request):
    seconds = float(request.GET.get("seconds", "3"))
    build_report(seconds)
    return HttpResponse("report ready\n")


def build_report(seconds: float) -> None:
    """Stands for a slow upstream call."""
    time.sleep(seconds)


urlpatterns = [
    path("", index),
    path("report", report),
]
