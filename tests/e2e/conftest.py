"""Browser fixtures: one headless Chromium per test process, a fresh context for every test.

Every test runs twice, on a desktop screen and on a phone, and fails if a page it opened logged
a JavaScript error, failed to load something or broke the Content Security Policy.
"""

import datetime
import os
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from customers.models import Customer, Interaction, Order

# Playwright's sync API keeps an asyncio event loop running in the test thread for as long as
# the browser is open, which is the whole session. Django sees that loop and refuses every ORM
# call from the thread (SynchronousOnlyOperation), although the calls are ordinary blocking ones
# that never run inside the loop: the e2e tests' own set-up and checks, and every later test
# that this worker process runs. The check cannot be lifted for one thread only, so it is lifted
# for the process, which only ever runs tests.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEVICES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 375, "height": 812},
        "is_mobile": True,
        "has_touch": True,
    },
}
# Screenshots for people to look at; the directory is ignored by git.
RESULTS_DIR = Path(__file__).resolve().parents[2] / "test-results"

# A browser reports a blocked script or style this way; exposed to pages as a binding below.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline code"} ` +
    `at ${event.sourceFile || document.location.href}:${event.lineNumber}`
  );
});
"""

expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(params=list(DEVICES))
def device(request):
    return request.param


@pytest.fixture
def locale():
    """The browser's language. English by default, so that tests read the interface's source
    strings and keep passing while its Chinese translation changes; a test that wants Chinese
    parametrizes this."""
    return "en-US"


@pytest.fixture
def page_problems():
    """Console errors, uncaught exceptions and CSP violations of every page a test opens."""
    return []


class RequestsInFlight:
    """Counts the live server's requests still being answered.

    A page closed at the end of a test may leave a request (a background retry, say) running
    in a server thread; if the database is emptied for the next test meanwhile, the two take
    their locks in opposite orders and PostgreSQL ends one of them as a deadlock.
    """

    def __init__(self, app):
        self.app, self.count, self.lock = app, 0, threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.count += 1
        try:
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                # Closing the response ends the request (its database work included).
                if hasattr(result, "close"):
                    result.close()
        finally:
            with self.lock:
                self.count -= 1

    def wait_until_idle(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.count and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture(scope="session")
def requests_in_flight(live_server):
    server = live_server.thread.httpd
    if not isinstance(server.get_app(), RequestsInFlight):
        server.set_app(RequestsInFlight(server.get_app()))
    return server.get_app()


@pytest.fixture
def context(
    browser, device, locale, live_server, transactional_db, page_problems, requests_in_flight
):
    # The live server answers from another thread, which sees only committed data.
    context = browser.new_context(
        **DEVICES[device],
        base_url=live_server.url,
        locale=locale,
        timezone_id="Asia/Shanghai",
    )
    context.set_default_timeout(10_000)

    def console(message):
        if message.type == "error":
            page_problems.append(f"console: {message.text} ({message.location['url']})")

    context.on("console", console)
    context.on("weberror", lambda error: page_problems.append(f"uncaught: {error.error.message}"))
    context.expose_binding(
        "reportCspViolation", lambda source, text: page_problems.append(f"CSP: {text}")
    )
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    yield context
    context.close()
    requests_in_flight.wait_until_idle()
    assert page_problems == [], "The pages reported problems:\n" + "\n".join(page_problems)


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def staff_page(context, live_server, client, staff):
    """A page signed in as the staff persona, without going through the sign-in form."""
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


@pytest.fixture
def customers(transactional_db, customer, staff, teams):
    """张伟 (active, with an interaction and an order), 王芳 (lead) and 李娜 (prospect)."""
    Interaction.objects.create(
        customer=customer,
        kind="call",
        channel="phone",
        summary="Asked about the spring catalogue",
        created_by=staff,
    )
    Order.objects.create(
        customer=customer,
        external_id="SO-1001",
        amount="1288.00",
        currency="CNY",
        channel="store",
        ordered_at=timezone.now() - datetime.timedelta(days=3),
    )
    wang = Customer.objects.create(
        display_name="王芳",
        family_name="王",
        given_name="芳",
        phone="+8613900139000",
        company="北京星光科技",
        status="lead",
        owner=staff,
        team=teams[0],
    )
    li = Customer.objects.create(
        display_name="李娜",
        family_name="李",
        given_name="娜",
        phone="+8613700137000",
        company="广州南方物流",
        status="prospect",
        owner=staff,
        team=teams[0],
    )
    return {"张伟": customer, "王芳": wang, "李娜": li}


@pytest.fixture
def screenshot(device):
    """Saves a full-page screenshot as test-results/<name>-<device>.png."""
    RESULTS_DIR.mkdir(exist_ok=True)

    def take(page, name):
        page.screenshot(path=RESULTS_DIR / f"{name}-{device}.png", full_page=True)

    return take
