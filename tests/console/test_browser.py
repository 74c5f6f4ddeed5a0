"""The console in a real browser: headless Chromium from Debian (scripts/install-test-tools installs
it) driven by Playwright, which is told to use that Chromium (``executable_path``) and downloads
no browser. Walks every page against a broker with data and clicks through create topic ->
produce -> browse -> group lag -> reset offsets. Screenshots go to artifacts/console/ (gitignored).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from confluent_kafka import Producer
from playwright.sync_api import Page, expect, sync_playwright

from kbroker.testing import BrokerThread
from kbroker_protocol.records import Record
from tests.console.helpers import consume_and_commit, post, produce_raw

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
SCRIPT = "<script>alert(1)</script>"
TOPIC = "e2e-topic"
GROUP = "e2e-group"
HOSTILE_GROUP = "<img src=x onerror=alert(5)>"
TXN_ID = "e2e-<svg onload=alert(6)>"
WAIT_MS = 20_000


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("Chromium is not installed: run scripts/install-test-tools (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@contextmanager
def open_page(browser, base: str) -> Iterator[Page]:
    """A page of a fresh browser context (no cookies): no script errors and no alert() allowed."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=base)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.dialogs = []  # type: ignore[attr-defined]

    def on_dialog(dialog):
        pg.dialogs.append((dialog.type, dialog.message))  # type: ignore[attr-defined]
        dialog.accept()
    pg.on("dialog", on_dialog)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], errors
    assert not [d for d in pg.dialogs if d[0] == "alert"], pg.dialogs  # type: ignore[attr-defined]


@pytest.fixture
def page(browser, base):
    with open_page(browser, base) as pg:
        yield pg


@pytest.fixture(scope="module")
def sasl_base():
    with BrokerThread({
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "sasl.jaas.config": ('org.apache.kafka.common.security.plain.PlainLoginModule required '
                             'user_admin="admin-secret";'),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "0",
        "kbroker.http.listeners": "http://127.0.0.1:0",
        "offsets.topic.num.partitions": "1",
        "kbroker.delayed.topic.num.partitions": "1",
        "kbroker.delayed.topic.replication.factor": "1",
        "kbroker.delayed.topic.min.isr": "1",
    }) as b:
        yield b.broker.metrics.http.url


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_selector("main[aria-busy=false]")
    page.mouse.move(1300, 880)  # no hover highlight in the picture
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def go(page: Page, hash_: str) -> None:
    page.goto("/" + hash_)
    page.wait_for_selector("main[aria-busy=false]")


def test_walk_every_page_create_produce_browse_lag_reset(page: Page, broker, base):
    bootstrap = broker.bootstrap_servers

    # Overview.
    go(page, "#/overview")
    expect(page.locator("#cluster-id")).to_have_text(broker.broker.cluster_id)
    expect(page.locator("#broker-count")).to_have_text("1")

    # Create a topic from the Topics page.
    page.click("header nav a[data-page=topics]")
    page.fill("#create-topic-name", TOPIC)
    page.fill("#create-topic-partitions", "3")
    page.fill("#create-topic-configs", "retention.ms=86400000")
    page.click("#create-topic-submit")
    expect(page.locator("#topic-name")).to_have_text(TOPIC)
    expect(page.locator("#notice-text")).to_contain_text(f"Created topic {TOPIC}")
    expect(page.locator("#partitions-table tbody tr")).to_have_count(3)
    expect(page.locator("tr[data-config-row='retention.ms'] input")).to_have_value("86400000")

    # Edit a config.
    page.fill("input[data-config='segment.ms']", "3600000")
    page.click("button[data-save='segment.ms']")
    expect(page.locator("#notice-text")).to_contain_text("Set segment.ms=3600000")
    expect(page.locator("tr[data-config-row='segment.ms'] td").nth(2)).to_have_text("DYNAMIC_TOPIC_CONFIG")
    shot(page, "topic")

    # Produce: a JSON record, then hostile markup in the value, key and headers.
    page.click("text=Produce >> nth=1")
    expect(page.locator("#produce-topic")).to_have_value(TOPIC)
    page.select_option("#produce-partition", "0")
    page.fill("#produce-key", "user-1")
    page.fill("#produce-value", '{"name":"Ada","tags":["x"]}')
    page.click("#produce-add-header")
    page.fill(".header-row >> nth=0 >> .header-key", "source")
    page.fill(".header-row >> nth=0 >> .header-value", "console-test")
    page.click("#produce-submit")
    expect(page.locator("#notice-text")).to_have_text(f"Produced to {TOPIC} partition 0 at offset 0")
    page.fill("#produce-key", "<b>bold</b>")
    page.fill("#produce-value", SCRIPT)
    page.fill(".header-row >> nth=0 >> .header-key", "<img src=x onerror=alert(2)>")
    page.fill(".header-row >> nth=0 >> .header-value", "<script>alert(3)</script>")
    page.click("#produce-submit")
    expect(page.locator("#notice-text")).to_have_text(f"Produced to {TOPIC} partition 0 at offset 1")
    shot(page, "produce")

    # Browse: newest first, markup shown as text, JSON pretty-printed.
    page.click(f"text=browse {TOPIC}")
    rows = page.locator("#records tr.record-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".record-value pre")).to_have_text(SCRIPT)
    expect(rows.nth(0).locator(".record-key pre")).to_have_text("<b>bold</b>")
    expect(rows.nth(0).locator(".record-headers")).to_contain_text("<img src=x onerror=alert(2)>: <script>alert(3)</script>")
    assert page.locator("#records script, #records img, #records b:has-text('bold')").count() == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 2  # the console's own two
    pretty = rows.nth(1).locator(".record-value pre.json").text_content()
    assert json.loads(pretty) == {"name": "Ada", "tags": ["x"]} and '\n  "name": "Ada"' in pretty
    # Filter on value text, then by partition and offset.
    page.fill("#browse-filter", "ada")
    page.click("#browse-load")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_have_attribute("data-offset", "0")
    page.fill("#browse-filter", "")
    page.select_option("#browse-partition", "0")
    page.select_option("#browse-mode", "offset")
    page.fill("#browse-offset", "1")
    page.click("#browse-load")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_have_attribute("data-offset", "1")
    # Bytes that are not text: hex, and escaped.
    produce_raw(bootstrap, TOPIC, 2, [Record(value=b"\x00\x01bin\xff", timestamp=int(time.time() * 1000))])
    page.select_option("#browse-partition", "2")
    page.select_option("#browse-mode", "newest")
    page.click("#browse-load")
    expect(rows).to_have_count(1)
    expect(rows.nth(0).locator(".record-value pre.hex")).to_have_text("00 01 62 69 6e ff")
    expect(rows.nth(0).locator(".record-value pre.escaped")).to_have_text("\\x00\\x01bin\\xff")
    page.select_option("#browse-partition", "0")
    # Live tail: a record produced elsewhere shows up on top.
    page.select_option("#browse-mode", "newest")
    page.click("#browse-load")
    expect(rows).to_have_count(2)
    page.check("#browse-live")
    post(base, f"/api/topics/{TOPIC}/produce", {"partition": 0, "key": "tail", "value": "arrived while tailing"})
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".record-value pre")).to_have_text("arrived while tailing")
    shot(page, "messages")
    page.uncheck("#browse-live")

    # A consumer group reads the 4 records (3 in partition 0, 1 in 2) and commits; 2 more arrive
    # in partition 0: lag 2.
    consume_and_commit(bootstrap, GROUP, TOPIC, 4)
    for i in range(2):
        post(base, f"/api/topics/{TOPIC}/produce", {"partition": 0, "value": f"later {i}"})
    post(base, f"/api/groups/{quote(HOSTILE_GROUP, safe='')}/reset-offsets", {"to": "earliest", "topic": TOPIC})
    page.click("header nav a[data-page=groups]")
    expect(page.locator(f"tr[data-group='{GROUP}'] td").nth(3)).to_have_text("Empty")
    expect(page.locator("#groups-table a.group-link", has_text=HOSTILE_GROUP)).to_have_count(1)
    page.click(f"a.group-link:text-is('{GROUP}')")
    expect(page.locator("#group-id")).to_have_text(GROUP)
    expect(page.locator("#group-state")).to_have_text("Empty")
    expect(page.locator("#group-total-lag")).to_have_text("2")
    expect(page.locator(f"tr.offset-row[data-topic='{TOPIC}'][data-partition='0'] td.committed")).to_have_text("3")
    shot(page, "group")

    # Reset the group's offsets to the earliest, then to an offset.
    page.select_option("#reset-topic", TOPIC)
    page.select_option("#reset-to", "earliest")
    page.click("#reset-submit")
    expect(page.locator("#notice-text")).to_have_text(f"Reset 3 partition offsets of {GROUP}")
    expect(page.locator("#group-total-lag")).to_have_text("6")
    page.select_option("#reset-topic", TOPIC)
    page.select_option("#reset-to", "offset")
    page.fill("#reset-offset", "4")
    page.click("#reset-submit")
    expect(page.locator("tr.offset-row[data-partition='0'] td.committed")).to_have_text("4")
    expect(page.locator("#group-total-lag")).to_have_text("1")

    # Transactions and producers.
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": TXN_ID})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(TOPIC, value=b"txn", partition=1)
    producer.commit_transaction(30)
    page.click("header nav a[data-page=transactions]")
    expect(page.locator("#transactions-table tr", has_text=TXN_ID)).to_contain_text("CompleteCommit")
    assert page.locator("#transactions-table svg").count() == 0
    expect(page.locator("#producers-table tr", has_text=TOPIC)).to_have_count(1)
    shot(page, "transactions")

    # Overview again, with throughput counted; then the topics list.
    go(page, "#/overview")
    expect(page.locator("#topic-count")).not_to_have_text("0")
    page.wait_for_selector("#throughput svg.chart")
    shot(page, "overview")
    go(page, "#/topics")
    # 5 records in partition 0; in partition 1 a transaction's record and its commit marker; 1 in 2.
    expect(page.locator(f"#topics-table tr[data-topic='{TOPIC}'] td").nth(4)).to_have_text("8")
    shot(page, "topics")

    # Delete the topic (the confirm dialog is accepted).
    go(page, f"#/topic/{TOPIC}")
    page.click("#delete-topic")
    expect(page.locator("#notice-text")).to_have_text(f"Deleted topic {TOPIC}")
    expect(page.locator(f"#topics-table tr[data-topic='{TOPIC}']")).to_have_count(0)
    assert ("confirm", f"Delete topic {TOPIC} and all its records?") in page.dialogs  # type: ignore[attr-defined]


def log_in(page: Page, user: str, password: str, mechanism: str) -> None:
    page.wait_for_selector("#login-form")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.select_option("#login-mechanism", mechanism)
    page.click("#login-submit")


def create_topic(page: Page, name: str) -> None:
    go(page, "#/topics")
    page.fill("#create-topic-name", name)
    page.click("#create-topic-submit")
    expect(page.locator("#topic-name")).to_have_text(name)


def test_login_acls_users_and_delayed_records_on_a_broker_with_sasl_users(browser, sasl_base):
    with open_page(browser, sasl_base) as page:
        # Every page asks for a login first; a wrong password is the broker's refusal.
        go(page, "#/overview")
        expect(page.locator("#login-mechanism option")).to_have_count(2)
        shot(page, "login")
        log_in(page, "admin", "wrong", "PLAIN")
        expect(page.locator("#notice-text")).to_contain_text("Invalid username or password")
        log_in(page, "admin", "admin-secret", "PLAIN")
        expect(page.locator("#who-principal")).to_have_text("User:admin")
        expect(page.locator("#broker-count")).to_have_text("1")

        # A SCRAM user, two topics, and an ACL letting that user see one of them.
        page.click("header nav a[data-page=users]")
        page.fill("#user-name", "carol")
        page.fill("#user-password", "carol-pw")
        page.select_option("#user-mechanism", "SCRAM-SHA-256")
        page.click("#user-submit")
        expect(page.locator("tr.user-row[data-user=carol] td").nth(1)).to_have_text("SCRAM-SHA-256")
        shot(page, "users")
        create_topic(page, "shared-t")
        create_topic(page, "hidden-t")
        page.click("header nav a[data-page=acls]")
        for operation in ("DESCRIBE", "READ"):
            page.select_option("#acl-resource-type", "TOPIC")
            page.fill("#acl-resource-name", "shared-t")
            page.fill("#acl-principal", "User:carol")
            page.select_option("#acl-operation", operation)
            page.click("#acl-submit")
            expect(page.locator("#acls-table tr.acl-row", has_text=operation)).to_have_count(1)
        shot(page, "acls")
        page.locator("#acls-table tr.acl-row", has_text="READ").locator("button").click()
        expect(page.locator("#notice-text")).to_contain_text("Deleted the ACL of User:carol")
        expect(page.locator("#acls-table tr.acl-row")).to_have_count(1)

        # A delayed record is pending on the Delayed page, not in its topic.
        go(page, "#/produce/shared-t")
        page.fill("#produce-value", "in ten minutes")
        page.click("#produce-add-header")
        page.fill(".header-row >> nth=0 >> .header-key", "kbroker-deliver-after-ms")
        page.fill(".header-row >> nth=0 >> .header-value", "600000")
        page.click("#produce-submit")
        expect(page.locator("#notice-text")).to_contain_text("Produced to shared-t")
        page.click("header nav a[data-page=delayed]")
        expect(page.locator("#delayed-table tr.delayed-row")).to_have_count(1)
        expect(page.locator("#delayed-table tr.delayed-row")).to_contain_text("in ten minutes")
        shot(page, "delayed")

        page.click("#logout")
        page.wait_for_selector("#login-form")
        expect(page.locator("#who-principal")).to_have_count(0)

        # The new user sees the topic it may describe, and may not write to it.
        log_in(page, "carol", "carol-pw", "SCRAM-SHA-256")
        expect(page.locator("#who-principal")).to_have_text("User:carol")
        go(page, "#/topics")
        expect(page.locator("#topics-table tr[data-topic='shared-t']")).to_have_count(1)
        expect(page.locator("#topics-table tr[data-topic='hidden-t']")).to_have_count(0)
        go(page, "#/produce/shared-t")
        page.fill("#produce-value", "not allowed")
        page.click("#produce-submit")
        expect(page.locator("#notice-text")).to_contain_text("TOPIC_AUTHORIZATION_FAILED")
        go(page, "#/delayed")
        expect(page.locator("#page-error")).to_contain_text("TOPIC_AUTHORIZATION_FAILED")


def test_a_failed_change_shows_the_brokers_error(page: Page):
    go(page, "#/topics")
    page.fill("#create-topic-name", "bad name")
    page.click("#create-topic-submit")
    expect(page.locator("#notice-text")).to_contain_text("characters other than ASCII alphanumerics")
    expect(page.locator("#notice-text")).to_have_class("error")
    go(page, "#/topic/missing-topic")
    expect(page.locator("#page-error")).to_have_text("no topic 'missing-topic'")
