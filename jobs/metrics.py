"""Prometheus metrics, read from our tables at scrape time.

Every worker and web process shares the database, so the database is the one place
that knows the whole installation; nothing is counted in process memory. Counters
(rows, tokens, cost) are sums over batches, which only ever grow.
"""

from collections import Counter
from decimal import Decimal

from django.db.models import Avg, Count, Max, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from jobs.models import Batch, Job
from jobs.money import pricing


class BatchdashCollector:
    def collect(self):
        jobs = GaugeMetricFamily("batchdash_jobs", "Jobs by status.", labels=["status"])
        for row in Job.objects.values("status").annotate(n=Count("pk")).order_by():
            jobs.add_metric([row["status"]], row["n"])
        yield jobs

        batches = GaugeMetricFamily(
            "batchdash_batches",
            "Provider batches by our state and the provider's.",
            labels=["state", "remote"],
        )
        for row in Batch.objects.values("status", "remote_status").annotate(n=Count("pk")).order_by():
            batches.add_metric([row["status"], row["remote_status"] or "none"], row["n"])
        yield batches

        succeeded = Batch.objects.filter(status=Batch.Status.DONE).aggregate(
            n=Sum("rows_succeeded", default=0)
        )
        rows = CounterMetricFamily("batchdash_rows_succeeded", "Row answers received.")
        rows.add_metric([], succeeded["n"])
        yield rows

        codes: Counter = Counter()
        for failure_codes in Batch.objects.exclude(failure_codes={}).values_list("failure_codes", flat=True):
            codes.update(failure_codes)
        failed = CounterMetricFamily("batchdash_rows_failed", "Row failures, by error code.", labels=["code"])
        for code, n in sorted(codes.items()):
            failed.add_metric([code], n)
        yield failed

        tokens = CounterMetricFamily(
            "batchdash_tokens", "Tokens sent and received.", labels=["model", "kind"]
        )
        cost = CounterMetricFamily(
            "batchdash_cost_dollars", "Estimated spend in US dollars.", labels=["model"]
        )
        prices = pricing.prices()
        sent = Batch.objects.exclude(submitted_at=None).values("job__model").order_by()
        for row in sent.annotate(i=Sum("input_tokens"), o=Sum("output_tokens")):
            model = row["job__model"]
            tokens.add_metric([model, "input"], row["i"])
            tokens.add_metric([model, "output"], row["o"])
            spent = pricing.cost(prices.get(model), row["i"], row["o"])
            cost.add_metric([model], float(spent.batch if spent else Decimal(0)))
        yield tokens
        yield cost

        running = Batch.objects.filter(status=Batch.Status.RUNNING)
        latency = running.aggregate(avg=Avg("last_poll_ms"), max=Max("last_poll_ms"))
        poll = GaugeMetricFamily(
            "batchdash_poll_latency_seconds", "Last provider poll time of running batches.", labels=["stat"]
        )
        poll.add_metric(["avg"], (latency["avg"] or 0) / 1000)
        poll.add_metric(["max"], (latency["max"] or 0) / 1000)
        yield poll

        overdue = GaugeMetricFamily(
            "batchdash_polls_overdue", "Running batches whose poll is over a minute late (scheduler lag)."
        )
        overdue.add_metric(
            [], running.filter(next_poll_at__lt=timezone.now() - timezone.timedelta(minutes=1)).count()
        )
        yield overdue

        stuck = GaugeMetricFamily(
            "batchdash_batches_slow", "Batches in validating or finalizing far longer than usual."
        )
        stuck.add_metric(
            [], sum(b.looks_stuck for b in running.filter(remote_status__in=["validating", "finalizing"]))
        )
        yield stuck


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BatchdashCollector())
    return generate_latest(registry)
