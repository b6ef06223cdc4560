from django.urls import reverse


def test_health_reports_the_database_and_the_broker(client, db):
    response = client.get(reverse("jobs:health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_health_says_unhealthy_when_the_broker_is_down(client, db, monkeypatch):
    from kombu import Connection

    from batchdash.celery import app

    monkeypatch.setattr(app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0"))
    response = client.get(reverse("jobs:health"))
    assert response.status_code == 503
    assert response.json()["broker"] == "unreachable"
