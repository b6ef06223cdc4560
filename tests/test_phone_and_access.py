"""The analyst's and the admin's journeys on a desktop and on a phone, checked by axe-core on every page.

Each page the journeys visit is screenshotted into test-artifacts/ (named `<viewport>-<page>`),
checked by axe-core (bundled by axe-playwright-python, so no network) for serious or critical
violations, and on the phone for anything wider than the screen: the page itself, and any
box that scrolls sideways without being a region a keyboard can reach (a data preview).
"""

import csv
import io
import re
from decimal import Decimal

import openpyxl
import pytest
from axe_playwright_python.sync_playwright import Axe

from bench.stack import wait_for
from jobs.models import Job, PromptTemplate
from tests.conftest import screenshot
from tests.test_browser import log_in, sent_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.browser]

# Reviews with their stars (a number an Excel user sorts by), one the provider refuses (fixable by
# editing the prompt) and one it fails on (fixable by sending again).
REVIEWS = (
    "Review Text,Reviewer,Stars\n"
    "Great shoes,Zoë,5\n"
    "[[simulate:content_policy_violation]] Rude words,Bob,1\n"
    "[[simulate:server_error]] The box was damaged,Chloé,2\n"
    "Arrived on time,Ana,4\n"
    "Would buy again,Tom,5\n"
).encode()

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}

# Boxes that scroll sideways on the phone although they should have become stacked cards, or
# that scroll without being a named, focusable region (a keyboard could not reach their hidden part).
SIDEWAYS = """() => [...document.querySelectorAll('body *')].filter(el => {
  const overflow = getComputedStyle(el).overflowX;
  return (overflow === 'auto' || overflow === 'scroll') && el.scrollWidth > el.clientWidth + 1
    && !(el.getAttribute('role') === 'region' && el.tabIndex === 0);
}).map(el => el.outerHTML.slice(0, 120))"""


class Inspector:
    """Looks at each page the journey visits and keeps what is wrong, to report it all at once."""

    def __init__(self, page, viewport: str):
        self.page = page
        self.viewport = viewport
        self.axe = Axe()
        self.problems: list[str] = []
        self.seen: list[str] = []

    def look(self, name: str) -> None:
        self.seen.append(name)
        self.page.wait_for_load_state()
        screenshot(self.page, f"{self.viewport}-{name}")
        results = self.axe.run(self.page)
        for violation in results.response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:4]
                self.problems.append(f"{name}: {violation['id']} ({violation['impact']}) at {targets}")
        if self.viewport == "phone":
            wide = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if wide > 0:
                self.problems.append(f"{name}: the page is {wide}px wider than the phone")
            for box in self.page.evaluate(SIDEWAYS):
                self.problems.append(f"{name}: scrolls sideways: {box}")


def open_menu(page) -> None:
    """On a phone the main navigation is folded behind its Menu button: unfold it."""
    toggler = page.get_by_role("button", name="Menu")
    if toggler.is_visible() and toggler.get_attribute("aria-expanded") == "false":
        toggler.click()
        page.locator("#main-menu.show").wait_for()


def go_to(page, link: str) -> None:
    """Follows a link of the main navigation."""
    open_menu(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(f"^{link}")).click()


def log_out(page) -> None:
    open_menu(page)
    page.get_by_role("button", name="Log out").click()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_analyst_and_the_admin_find_every_page_usable_on_a_desktop_and_a_phone(
    page, live_server, simulator_credential, worker, settings, tmp_path, django_user_model, viewport
):
    settings.SIMULATOR_SPEED = 500
    page.set_viewport_size(VIEWPORTS[viewport])
    inspector = Inspector(page, viewport)
    zoe = log_in(page, live_server, django_user_model)
    PromptTemplate.objects.create(
        owner=zoe,
        name="Sentiment",
        model="gpt-4o-mini",
        user_prompt="Is this review positive or negative? {{ Review Text }}",
    )
    inspector.look("jobs-empty")

    # Upload, then the mapping filled from the saved template, and the pilot.
    table = tmp_path / "shoe reviews.csv"
    table.write_bytes(REVIEWS)
    page.get_by_role("link", name="Start a new job").click()
    inspector.look("upload")
    page.get_by_label("Your table").set_input_files(str(table))
    page.get_by_role("button", name="Upload and continue").click()
    page.get_by_role("combobox", name="Start from a saved template").select_option(label="Sentiment")
    page.get_by_role("button", name="Use it").click()
    prompt = page.get_by_label("Prompt for each row")
    assert prompt.input_value() == "Is this review positive or negative? {{ Review Text }}"
    page.get_by_label("Name", exact=True).fill("Shoe reviews")
    page.get_by_test_id("preview-prompt").first.wait_for()
    inspector.look("mapping")
    page.get_by_role("button", name="Try the first 5 rows").click()
    page.get_by_test_id("pilot-trial").nth(4).wait_for()
    page.get_by_text("Show the request").first.click()
    inspector.look("mapping-with-pilot")

    # The plan, Edit back to the form, the plan again, Discard, and a last plan that is sent.
    page.get_by_role("button", name="Prepare and show the plan").click()
    page.get_by_test_id("plan").wait_for(timeout=60_000)
    inspector.look("plan")
    page.get_by_role("link", name="Edit").click()
    page.get_by_test_id("editing").wait_for()
    inspector.look("plan-edit")
    page.get_by_role("button", name="Prepare and show the plan").click()
    page.get_by_test_id("plan").wait_for(timeout=60_000)
    page.get_by_role("button", name="Discard").click()
    prompt.wait_for()
    inspector.look("after-discard")
    page.get_by_role("button", name="Prepare and show the plan").click()
    page.locator(".invalid-feedback").first.wait_for()
    inspector.look("mapping-with-errors")
    page.get_by_role("button", name="Use it").click()
    page.get_by_label("Name", exact=True).fill("Shoe reviews")
    page.get_by_role("button", name="Prepare and show the plan").click()
    page.get_by_test_id("plan").wait_for(timeout=60_000)
    page.get_by_role("button", name="Send 5 rows").click()
    page.locator("#job-progress").get_by_text("Completed").wait_for(timeout=120_000)
    inspector.look("job-completed")
    go_to(page, "Jobs")
    page.get_by_role("link", name="Shoe reviews").wait_for()
    inspector.look("jobs")

    # The answers on screen: searched, one row's request and answer opened.
    job = Job.objects.get(owner=zoe, name="Shoe reviews", status=Job.Status.COMPLETED)
    page.get_by_role("link", name="Shoe reviews").click()
    page.get_by_role("link", name="See the results").click()
    page.locator("#results-table").get_by_text("Great shoes").wait_for()
    page.get_by_label("Text in any cell").fill("on time")
    wait_for(lambda: page.locator("#results-table").get_by_text("Great shoes").count() == 0, timeout=10)
    page.get_by_text("Request and answer").first.click()
    page.get_by_text("What was sent for row 4").wait_for()
    inspector.look("results")

    # The failed rows, with the exchange of one opened, and the refused one sent with an edited prompt.
    page.goto(f"{live_server.url}/jobs/{job.code}/")
    page.get_by_role("link", name="Review the 2 failed rows").click()
    page.get_by_text("The provider's words, the request and the response").first.click()
    page.get_by_text("What was sent for row 2").wait_for()
    inspector.look("failures")
    page.get_by_label("Select row 2").check()
    page.get_by_role("button", name="Edit the prompt and send the ticked rows").click()
    page.get_by_label("Prompt", exact=True).fill("Thank {{ Reviewer }} for the review")
    page.locator("#prompt-preview").get_by_text("Thank Bob for the review").wait_for()
    inspector.look("resend-with-edited-prompt")
    page.get_by_role("button", name="Send 1 row with this prompt").click()
    page.get_by_text("Sending 1 row again with the edited prompt").wait_for()
    wait_for(
        lambda: Job.objects.get(pk=job.pk).is_finished and Job.objects.get(pk=job.pk).rows_succeeded == 4,
        timeout=120,
        message="the resent row to be answered",
    )
    page.reload()
    page.get_by_role("link", name="Excel").wait_for(timeout=60_000)
    inspector.look("job-after-resend")

    # The downloads, read back: the CSV in row order, the failures, and the Excel copy as Excel shows it.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download results (CSV)").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text("utf-8-sig"))))
    assert [row[1] for row in rows[1:]] == ["Zoë", "Bob", "Chloé", "Ana", "Tom"]
    with page.expect_download() as download:
        page.get_by_role("link", name="Failed and unsent rows (CSV)").click()
    failed = list(csv.DictReader(io.StringIO(download.value.path().read_text("utf-8-sig"))))
    assert [row["Reviewer"] for row in failed] == ["Chloé"]
    with page.expect_download() as download:
        page.get_by_role("link", name="Excel").click()
    assert download.value.suggested_filename.startswith("Shoe reviews")
    book = openpyxl.load_workbook(io.BytesIO(download.value.path().read_bytes()))
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    stars = header.index("Stars") + 1
    assert [sheet.cell(row, stars).value for row in range(2, 7)] == [5, 1, 2, 4, 5]  # numbers, not text
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:")
    assert all(sheet.column_dimensions[letter].width for letter in "ABC")
    cells = [cell.value for row in sheet.iter_rows(min_row=2) for cell in row if cell.value]
    assert not any(str(value).startswith("'") for value in cells)
    assert "Details" in book.sheetnames
    go_to(page, "Templates")
    inspector.look("templates")

    # The admin: a job waiting for approval, the queue, a key tested and its page, spend, the audit log.
    simulator_credential.approval_above = Decimal("0.000001")
    simulator_credential.save()
    waiting = sent_job(zoe, simulator_credential, name="Big survey")
    assert Job.objects.get(pk=waiting.pk).status == Job.Status.AWAITING_APPROVAL
    log_out(page)
    inspector.look("login")
    root = django_user_model.objects.create_user("root", "root@example.com", "root-password-1", is_staff=True)
    page.get_by_label("User name").fill(root.username)
    page.get_by_label("Password").fill("root-password-1")
    page.get_by_role("button", name="Log in").click()
    inspector.look("admin-jobs")
    open_menu(page)
    inspector.look("admin-menu")
    go_to(page, "Approvals")
    inspector.look("approvals")
    page.get_by_role("link", name="Big survey").click()
    inspector.look("approval-job")
    page.get_by_role("button", name="Approve").click()
    wait_for(
        lambda: Job.objects.get(pk=waiting.pk).status != Job.Status.AWAITING_APPROVAL, message="approval"
    )
    go_to(page, "People")
    page.get_by_role("link", name="Teams and budgets").click()
    page.get_by_label("Name").fill("Marketing")
    page.get_by_label("Monthly budget (US dollars)").fill("300")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="Marketing").wait_for()
    inspector.look("teams")
    go_to(page, "People")
    page.get_by_label("First name").fill("Maria")
    page.get_by_label("Username (to log in)").fill("maria")
    page.get_by_label("Email address").fill("maria@example.com")
    page.get_by_label("Marketing").check()
    page.get_by_role("button", name="Add").click()
    page.get_by_test_id("new-password").wait_for()
    inspector.look("people-added")
    go_to(page, "Keys")
    page.get_by_role("button", name="Test Simulator").click()
    page.get_by_role("status").filter(has_text="Simulator:").wait_for()
    inspector.look("keys-tested")
    page.get_by_role("link", name="Simulator").click()
    inspector.look("key")
    go_to(page, "Spend")
    inspector.look("spend")
    go_to(page, "Audit log")
    inspector.look("audit")

    assert inspector.problems == [], "\n".join(inspector.problems)
