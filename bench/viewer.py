"""Someone with a job's page open: its progress fragment polled every 2 s as htmx polls it.

htmx sends `HX-Request`, swaps the fragment in on 200 (and with it the `hx-get` address, whose
`v=` says what it was drawn from), keeps what it has on 204 and stops on 286. Each poll's time
and status are kept, and the moments the page first showed the results CSV link and every
download (the Excel link, written last).
"""

import re
import threading
import time
from dataclasses import dataclass, field

import requests

POLL_EVERY = 2.0
HX_GET = re.compile(r'hx-get="([^"]*/progress/\?v=[^"]+)"')
CSV_LINK = "/download/results/"
EXCEL_LINK = "/download/xlsx/"  # the last download to be written
# The answers of a poll that went well: a redraw, nothing changed, or the last redraw.
POLL_OK = {200, 204, 286}


@dataclass
class Viewer:
    url: str  # the web server's, e.g. http://127.0.0.1:8000
    code: str
    cookies: dict
    poll_every: float = POLL_EVERY
    timings_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    csv_link_at: float | None = None  # time.time() of the poll that first showed it
    every_link_at: float | None = None
    stopped: bool = False

    def run(self, until: float, first_delay: float = 0.0) -> None:
        """Poll until the wall clock reaches `until` or htmx would stop (286)."""
        session = requests.Session()
        session.cookies.update(self.cookies)
        page = session.get(f"{self.url}/jobs/{self.code}/", timeout=60)
        address = HX_GET.search(page.text).group(1).replace("&amp;", "&")
        next_poll = time.time() + first_delay
        while not self.stopped:
            time.sleep(max(0.0, next_poll - time.time()))
            if time.time() >= until:
                return
            next_poll += self.poll_every
            started = time.perf_counter()
            try:
                response = session.get(self.url + address, headers={"HX-Request": "true"}, timeout=30)
            except requests.RequestException as exc:
                self.errors.append(type(exc).__name__)
                continue
            self.timings_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code not in POLL_OK:
                self.errors.append(str(response.status_code))
                continue
            if response.status_code != 204:
                if self.csv_link_at is None and CSV_LINK in response.text:
                    self.csv_link_at = time.time()
                if self.every_link_at is None and EXCEL_LINK in response.text:
                    self.every_link_at = time.time()
                drawn = HX_GET.search(response.text)
                if drawn:
                    address = drawn.group(1).replace("&amp;", "&")
            if response.status_code == 286:  # the job has ended and its follow-up work too
                return

    def start(self, until: float, first_delay: float = 0.0) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(until, first_delay), daemon=True)
        thread.start()
        return thread
