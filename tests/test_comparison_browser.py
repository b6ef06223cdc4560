"""In the browser, on a desktop and on a phone: three models compared side by side on the first rows,
then one of them chosen for the job, checked by axe-core on each step.

Screenshots go to test-artifacts/ (as every browser test's) and to /tmp/shots-compare/, for a person
to look at.
"""

from pathlib import Path

import pytest

from jobs import datasets
from tests.conftest import make_dataset
from tests.test_browser import log_in
from tests.test_comparison import LABELS, MODELS, priced
from tests.test_phone_and_access import VIEWPORTS, Inspector

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SHOTS = Path("/tmp/shots-compare")


def look(inspector: Inspector, name: str) -> None:
    inspector.look(name)
    SHOTS.mkdir(exist_ok=True)
    inspector.page.screenshot(path=str(SHOTS / f"{inspector.viewport}-{name}.png"), full_page=True)
    # The comparison alone as well: on a phone the whole page is too tall to read in one picture.
    section = inspector.page.get_by_role("region", name="Compare models on your rows")
    section.screenshot(path=str(SHOTS / f"{inspector.viewport}-{name}-section.png"))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_three_models_compared_side_by_side_and_one_chosen_for_the_job(
    page, live_server, simulator_credential, django_user_model, viewport
):
    priced()
    page.set_viewport_size(VIEWPORTS[viewport])
    inspector = Inspector(page, viewport)
    zoe = log_in(page, live_server, django_user_model)
    dataset = make_dataset(zoe)
    datasets.count_rows(dataset.pk)  # as the worker does, for the whole table's cost
    page.goto(f"{live_server.url}/datasets/{dataset.code}/new-job/")
    page.get_by_label("Prompt for each row").fill("Sentiment of: {{ Review Text }}")
    page.get_by_text("Answer in fields (structured output)").click()
    page.get_by_label("Name of field 1").fill("sentiment")
    page.get_by_label("Kind of field 1").select_option("label")
    page.get_by_label("Labels of field 1").fill(", ".join(LABELS))
    page.get_by_label("Second model").select_option(MODELS[1])
    page.get_by_label("Third model").select_option(MODELS[2])

    page.get_by_role("button", name="Compare the models").click()
    page.get_by_test_id("compare-row").nth(4).wait_for()
    assert page.get_by_test_id("compare-model").count() == 3
    assert page.get_by_test_id("compare-agreement").get_by_role("listitem").count() == 3
    page.get_by_role("table", name="The answers side by side").scroll_into_view_if_needed()
    look(inspector, "mapping-with-comparison")

    page.get_by_role("button", name=f"Use this model: {MODELS[1]}", exact=True).click()
    page.wait_for_function(
        "model => document.querySelector('#model-field select').value === model", arg=MODELS[1]
    )
    # The preview of the requests follows: it now names the chosen model.
    page.wait_for_function(
        "text => document.querySelector('pre.request-preview').textContent.includes(text)",
        arg=f'"model": "{MODELS[1]}"',
    )
    assert page.get_by_label("Prompt for each row").input_value() == "Sentiment of: {{ Review Text }}"
    look(inspector, "mapping-model-chosen")
    assert inspector.problems == []
