"""The judging page in a real browser: system Chromium driven by Playwright (no downloaded browser), the
server started by the real `archive-encoders judge` command. Enter a name, grade every passage of one
query with the keyboard, and find the grades in SQLite; type a query of one's own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.judging_helpers import write_pool

from archive_encoders.judging.store import JudgmentStore, typed_queries

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no system Chromium at {CHROMIUM}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    pool, _ = write_pool(tmp_path)
    db, port = tmp_path / "j.sqlite", free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    argv = [sys.executable, "-m", "archive_encoders.cli", "judge", "--pool", str(pool), "--db", str(db)]
    proc = subprocess.Popen([*argv, "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"judging server did not start: {proc.stderr.read()}")
            time.sleep(0.2)
    yield url, db
    proc.terminate()
    proc.wait(timeout=10)


def test_grade_one_query_by_keyboard(server):
    from playwright.sync_api import expect, sync_playwright

    url, db = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url)
            page.fill("#name", "Анна")
            page.press("#name", "Enter")
            passages = page.locator("#passages .passage")
            expect(passages).to_have_count(5)
            expect(page.locator("#query")).to_have_text("пожар в Иркутске 1879")
            expect(page.locator("#who")).to_have_text("annotator: Анна")
            # the passage with markup in its text shows it as text
            expect(page.locator("#passages")).to_contain_text("<b>Letters</b> & notes <script>")
            assert page.locator("#passages b, #passages script").count() == 0
            shown = [passages.nth(i).get_attribute("data-corpus-id") for i in range(5)]

            started = time.perf_counter()
            # grade 0th, skip down with j, grade 2nd, 3rd, 4th, back up with k and ArrowUp, grade the 1st
            for key in ["2", "j", "0", "1", "0", "k", "k", "ArrowUp", "1"]:
                page.keyboard.press(key)
            expect(page.locator("#progress")).to_contain_text("this query 5 / 5")
            elapsed = time.perf_counter() - started
            print(f"\njudging one query (5 passages) by keyboard in Chromium: {elapsed:.2f} s")

            expected = dict(zip(shown, [2, 1, 0, 1, 0], strict=True))
            assert JudgmentStore(db).grades("Анна", "q1") == {("q1", c): g for c, g in expected.items()}
            grades = [passages.nth(i).get_attribute("data-grade") for i in range(5)]
            assert grades == ["2", "1", "0", "1", "0"]

            page.reload()  # the name is remembered, the grades are shown, n moves to the next query
            expect(page.locator("#name-form")).to_be_hidden()
            expect(page.locator("#query")).to_have_text("Lake Baikal fisheries")  # q1 is done
            expect(page.locator("#progress")).to_contain_text("judged 5 / 12 passages, 1 / 3 queries done")
            page.keyboard.press("n")
            expect(page.locator("#query")).to_have_text("letters <about> & fire")
            # a query of one's own: typed (its letters grade nothing), stored, waiting for the pool
            page.fill("#new-query", "наводнение 1824 года")
            page.press("#new-query", "Enter")
            expect(page.locator("#waiting")).to_contain_text("1 typed query waits")
            expect(page.locator("#waiting")).to_contain_text("наводнение 1824 года")
            expect(page.locator("#new-query")).to_have_value("")
            assert typed_queries(db) == ["наводнение 1824 года"]
            expect(page.locator("#query")).to_have_text("letters <about> & fire")
            page.click("#switch")  # another annotator on the same browser
            expect(page.locator("#name-form")).to_be_visible()
        finally:
            browser.close()
