"""The simulator's routes, mounted at /simulator/v1/ (so the SDK's base URL ends in /v1)."""

from django.urls import path

from simulator import views

urlpatterns = [
    path("files", views.files),
    path("files/<str:file_id>", views.file_detail),
    path("files/<str:file_id>/content", views.file_content),
    path("batches", views.batches),
    path("batches/<str:batch_id>", views.batch_detail),
    path("batches/<str:batch_id>/cancel", views.batch_cancel),
    path("chat/completions", views.chat_completions),
    path("responses", views.responses),
    path("embeddings", views.embeddings),
    path("models", views.models),
]
