"""URLs of the app; objects are addressed by their random code, never the database id."""

from django.urls import path

from jobs import views

app_name = "jobs"
urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("keys/", views.keys, name="keys"),
    path("audit/", views.audit_log, name="audit"),
    path("spend/", views.spend_report, name="spend"),
    path("keys/new/", views.key_form, name="key_new"),
    path("keys/<uuid:code>/", views.key_form, name="key_edit"),
    path("keys/<uuid:code>/test/", views.key_test, name="key_test"),
    path("keys/<uuid:code>/toggle/", views.key_toggle, name="key_toggle"),
    path("keys/<uuid:code>/delete/", views.key_delete, name="key_delete"),
    path("upload/", views.upload, name="upload"),
    path("datasets/<uuid:code>/new-job/", views.new_job, name="new_job"),
    path("datasets/<uuid:code>/preview/", views.preview, name="preview"),
    path("datasets/<uuid:code>/pilot/", views.pilot_run, name="pilot"),
    path("datasets/<uuid:code>/reading/", views.reading, name="reading"),
    path("datasets/<uuid:code>/save-template/", views.save_template, name="save_template"),
    path("templates/", views.templates, name="templates"),
    path("templates/<uuid:code>/delete/", views.template_delete, name="template_delete"),
    path("datasets/<uuid:code>/count/", views.dataset_count, name="dataset_count"),
    path("jobs/<uuid:code>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:code>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<uuid:code>/row/", views.job_row, name="job_row"),
    path("jobs/<uuid:code>/start/", views.start, name="start"),
    path("jobs/<uuid:code>/approve/", views.approve, name="approve"),
    path("jobs/<uuid:code>/cancel/", views.cancel, name="cancel"),
    path("jobs/<uuid:code>/delete/", views.delete, name="delete"),
    path("jobs/<uuid:code>/retry/", views.retry, name="retry"),
    path("jobs/<uuid:code>/failures/", views.failures, name="failures"),
    path("jobs/<uuid:code>/rows/<int:row>/", views.row_detail, name="row_detail"),
    path("jobs/<uuid:code>/download/<str:kind>/", views.download, name="download"),
]
