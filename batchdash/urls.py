"""Top-level URLs: the app, auth, the Django admin and (when enabled) the simulator."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", include("jobs.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

if settings.SIMULATOR_ENABLED:
    urlpatterns.append(path("simulator/v1/", include("simulator.urls")))
