"""URLs of the app, grouped as the views are; objects are addressed by their random code, never the id."""

from django.urls import path

from jobs.views import datasets, health, jobs, keys, people, reports, resend, results

app_name = "jobs"
urlpatterns = [
    # Jobs: the list, a job's page and fragments, what its owner or an admin does with it.
    path("", jobs.home, name="home"),
    path("jobs/<uuid:code>/", jobs.job_detail, name="job_detail"),
    path("jobs/<uuid:code>/progress/", jobs.job_progress, name="job_progress"),
    path("jobs/<uuid:code>/row/", jobs.job_row, name="job_row"),
    path("jobs/<uuid:code>/start/", jobs.start, name="start"),
    path("jobs/<uuid:code>/start-first/", jobs.start_first, name="start_first"),
    path("jobs/<uuid:code>/run-now/", jobs.run_now, name="run_now"),
    path("jobs/<uuid:code>/switch-to-batch/", jobs.switch_to_batch, name="switch_to_batch"),
    path("jobs/<uuid:code>/approve/", jobs.approve, name="approve"),
    path("jobs/<uuid:code>/decline/", jobs.decline, name="decline"),
    path("jobs/<uuid:code>/cancel/", jobs.cancel, name="cancel"),
    path("jobs/<uuid:code>/delete/", jobs.delete, name="delete"),
    path("jobs/<uuid:code>/discard/", jobs.discard, name="discard"),
    path("jobs/<uuid:code>/send-again/", jobs.send_again, name="send_again"),
    path("jobs/<uuid:code>/retry/", jobs.retry, name="retry"),
    path("jobs/<uuid:code>/failures/", jobs.failures, name="failures"),
    path("jobs/<uuid:code>/resend/", resend.resend, name="resend"),
    path("jobs/<uuid:code>/resend/preview/", resend.resend_preview, name="resend_preview"),
    path("jobs/<uuid:code>/results/", results.results, name="results"),
    path("jobs/<uuid:code>/rows/<int:row>/", jobs.row_detail, name="row_detail"),
    path("jobs/<uuid:code>/download/<str:kind>/", jobs.download, name="download"),
    # Datasets and mapping: upload, reading choices, the new-job form (preview, pilot, comparison); templates.
    path("upload/", datasets.upload, name="upload"),
    path("datasets/<uuid:code>/reading/", datasets.reading, name="reading"),
    path("datasets/<uuid:code>/count/", datasets.dataset_count, name="dataset_count"),
    path("datasets/<uuid:code>/new-job/", datasets.new_job, name="new_job"),
    path("datasets/<uuid:code>/preview/", datasets.preview, name="preview"),
    path("datasets/<uuid:code>/pilot/", datasets.pilot_run, name="pilot"),
    path("datasets/<uuid:code>/compare/", datasets.compare, name="compare"),
    path("datasets/<uuid:code>/use-model/", datasets.use_model, name="use_model"),
    path("datasets/<uuid:code>/save-template/", datasets.save_template, name="save_template"),
    path("templates/", datasets.templates, name="templates"),
    path("templates/<uuid:code>/delete/", datasets.template_delete, name="template_delete"),
    # Keys (admins).
    path("keys/", keys.keys, name="keys"),
    path("keys/new/", keys.key_form, name="key_new"),
    path("keys/<uuid:code>/", keys.key_form, name="key_edit"),
    path("keys/<uuid:code>/test/", keys.key_test, name="key_test"),
    path("keys/<uuid:code>/toggle/", keys.key_toggle, name="key_toggle"),
    path("keys/<uuid:code>/delete/", keys.key_delete, name="key_delete"),
    # People, teams with their budgets, model prices (admins).
    path("people/", people.people, name="people"),
    path("people/<str:username>/", people.person, name="person"),
    path("teams/", people.teams, name="teams"),
    path("teams/<int:pk>/", people.team, name="team"),
    path("prices/", people.prices, name="prices"),
    path("prices/new/", people.price, name="price_new"),
    path("prices/<int:pk>/", people.price, name="price"),
    # Admins' pages: approvals waiting, spend, the audit log.
    path("approvals/", reports.approvals, name="approvals"),
    path("spend/", reports.spend_report, name="spend"),
    path("audit/", reports.audit_log, name="audit"),
    # For machines.
    path("health/", health.health, name="health"),
    path("metrics", health.metrics, name="metrics"),
]
