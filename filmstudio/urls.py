from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.defaults import page_not_found, server_error
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle

from filmstudio.api import both_slashes, json_not_found, json_server_error


class TokenApi(ObtainAuthToken):
    """Exchange a username and password for an API token (rate limited per address)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dashboard/", include("generation.dashboard_urls")),
    path("studio/", include("projects.studio_urls")),
    path("test/test.html", RedirectView.as_view(pattern_name="studio")),
    path("healthz", healthz),
    *both_slashes("api/auth/token", TokenApi.as_view(), "auth-token"),
    *both_slashes("api/schema", SpectacularAPIView.as_view(), "schema"),
    *both_slashes("docs", SpectacularSwaggerView.as_view(url_name="schema"), "docs"),
    path("", include("projects.blob_urls")),
    path("", include("projects.urls")),
    path("", include("generation.urls")),
    path("", include("director.urls")),
]


def handler404(request, exception):
    if request.path.startswith(("/api/", "/blob/")):
        return json_not_found(request, exception)
    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith(("/api/", "/blob/")):
        return json_server_error(request)
    return server_error(request)
