"""In the browser, on a desktop and a phone, checked by axe-core: a workbook's sheets, a template applied
in full with its preview, a repeated row ID refused on the form, an earlier table used again, and a
template deleted after a question that names its team.

Screenshots go to test-artifacts/ (named `<viewport>-datasets-<state>`) for a person to look at.
"""

import io

import pytest
import xlsxwriter
from django.contrib.auth.models import Group

from jobs import datasets
from jobs.models import Dataset, PromptTemplate
from tests.test_browser import log_in
from tests.test_phone_and_access import VIEWPORTS, Inspector, go_to

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def orders_workbook() -> bytes:
    """An empty first sheet, Orders (whose Item repeats), a hidden Lookup and Customers."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    book.add_worksheet("Notes")
    sheets = {
        "Orders": [["Order", "Item"], ["A-1", "shoes"], ["A-2", "socks"], ["A-3", "shoes"]],
        "Lookup": [["Code", "Meaning"], ["x", "unknown"]],
        "Customers": [["Name", "City"], ["Zoë", "Lyon"], ["Tom", "Leeds"]],
    }
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            sheet.write_row(r, 0, row)
        if name == "Lookup":
            sheet.hide()
    book.close()
    return buffer.getvalue()


def counted(page) -> Dataset:
    """The newest upload, counted as the worker would count it, and its page shown again."""
    dataset = Dataset.objects.order_by("-pk").first()
    datasets.count_rows(dataset.pk)
    page.reload()
    page.locator("#row-count").get_by_text("rows").wait_for()
    return dataset


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_analyst_reads_another_sheet_applies_a_template_reuses_a_table_and_deletes_a_template(
    page, live_server, django_user_model, simulator_credential, viewport
):
    page.set_viewport_size(VIEWPORTS[viewport])
    look = Inspector(page, viewport)
    zoe = log_in(page, live_server, django_user_model)
    team = Group.objects.create(name="Research")
    zoe.groups.add(team)
    PromptTemplate.objects.create(
        owner=zoe,
        team=team,
        name="Order check",
        model="gpt-4o",
        user_prompt="Is order {{ Order }} complete?",
        id_column="Order",
        empty_rows="any",
        reuse_answers=True,
        output_fields=[{"name": "complete", "type": "label", "description": "", "labels": ["yes", "no"]}],
    )

    # A workbook: the sheet read is named, the others offered.
    go_to(page, "New job")
    page.get_by_label("Your table").set_input_files(
        files=[{"name": "orders.xlsx", "mimeType": "application/octet-stream", "buffer": orders_workbook()}]
    )
    page.get_by_role("button", name="Upload and continue").click()
    page.get_by_test_id("sheet-read").wait_for()
    first = counted(page)
    assert page.get_by_test_id("sheet-read").inner_text() == "Read sheet “Orders” (2 of 4)."
    look.look("datasets-workbook")

    # The template fills every setting it holds, and the preview shows its requests at once.
    page.locator("#template").select_option(label="Order check")
    page.get_by_role("button", name="Use it").click()
    page.get_by_test_id("preview-prompt").first.wait_for()
    assert page.get_by_test_id("preview-prompt").first.inner_text() == "Is order A-1 complete?"
    assert page.get_by_label("Model", exact=True).input_value() == "gpt-4o"
    assert page.get_by_label("Share with").input_value() == str(team.pk)
    assert page.get_by_label("Empty rows").input_value() == "any"
    assert page.get_by_label("Name of field 1").input_value() == "complete"
    page.get_by_text("Advanced: endpoint, temperature").click()
    assert page.get_by_label("Row ID").input_value() == "Order"
    assert page.get_by_label("Reuse earlier answers to identical requests").is_checked()
    look.look("datasets-template-applied")

    # A row ID that repeats is refused while still on the form: live, then on Prepare.
    page.get_by_label("Row ID").select_option("Item")
    problem = page.get_by_test_id("id-problem")
    problem.wait_for()
    assert "its value “shoes” is in row 1 and again in row 3" in problem.inner_text()
    page.get_by_role("button", name="Prepare and show the plan").click()
    page.locator(".invalid-feedback", has_text="The column “Item” cannot name the rows").wait_for()
    look.look("datasets-row-id-refused")

    # Another sheet: an empty one is refused by name, a good one read and counted.
    page.get_by_label("Read another sheet").select_option("Notes")
    page.get_by_role("button", name="Read this sheet").click()
    page.get_by_text("The sheet “Notes” is empty: it has no cells.").wait_for()
    look.look("datasets-empty-sheet")
    page.get_by_label("Read another sheet").select_option("Customers")
    page.get_by_role("button", name="Read this sheet").click()
    page.get_by_text("Read the sheet “Customers”").wait_for()
    counted(page)
    assert page.get_by_test_id("sheet-read").inner_text() == "Read sheet “Customers” (4 of 4)."
    assert page.get_by_role("button", name="{{ City }}").is_visible()
    look.look("datasets-other-sheet")

    # The table again, without uploading it: straight to mapping.
    go_to(page, "New job")
    earlier = page.get_by_test_id("earlier-upload")
    assert earlier.count() == 1 and "sheet “Customers”" in earlier.inner_text()
    look.look("datasets-earlier-uploads")
    earlier.get_by_role("link", name="Use this table").click()
    page.get_by_test_id("sheet-read").get_by_text("Customers").wait_for()
    assert page.url.endswith(f"/datasets/{first.code}/new-job/")

    # Deleting the template asks first, naming the team it is shared with.
    go_to(page, "Templates")
    page.get_by_role("link", name="Delete Order check").click()
    page.get_by_test_id("shared-with").get_by_text("shared with the team Research").wait_for()
    look.look("datasets-template-delete")
    page.get_by_role("button", name="Delete the template").click()
    page.get_by_text("Deleted the template “Order check”").wait_for()
    assert not PromptTemplate.objects.exists()

    assert not look.problems, "\n".join(look.problems)
