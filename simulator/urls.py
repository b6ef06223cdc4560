"""The simulator's routes, mounted at /simulator/v1/ (so the SDK's base URL ends in /v1)."""

from django.urls import path, re_path

from simulator import sync_views, views

urlpatterns = [
    path("files", views.files),
    path("files/<str:file_id>", views.file_detail),
    path("files/<str:file_id>/content", views.file_content),
    path("batches", views.batches),
    path("batches/<str:batch_id>", views.batch_detail),
    path("batches/<str:batch_id>/cancel", views.batch_cancel),
    path("chat/completions", sync_views.chat_completions),
    path("responses", sync_views.responses),
    path("embeddings", sync_views.embeddings),
    path("completions", sync_views.completions),
    path("moderations", sync_views.moderations),
    path("models", sync_views.models),
    path("models/<str:model_id>", sync_views.model_detail),
    # Last: every other path answers OpenAI's 404 envelope.
    re_path(r"^(?P<rest>.*)$", sync_views.unknown),
]
