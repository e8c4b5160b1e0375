"""A small Django project, settings and view in one module, for the Dogslow comparison."""

from django.http import HttpResponse
from django.urls import path

DEBUG = False
SECRET_KEY = "benchmark-only"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
MIDDLEWARE: list = []
INSTALLED_APPS: list = []
DATABASES: dict = {}
USE_TZ = True
DOGSLOW_TIMER = 25
DOGSLOW_LOG_TO_FILE = False


def order(request, order_id: int):
    total = sum(i * order_id for i in range(50))
    return HttpResponse(f"order {order_id}: {total}")


urlpatterns = [path("orders/<int:order_id>", order)]
