"""The demo's HTML report in headless Chromium through a real automation driver (selenium + chromedriver): no
console errors, table-of-contents links scroll to their section, headers sort, filters hide rows, no two text
labels of a figure overlap, the first screen answers the research questions, and a screenshot is saved.

One demo run serves the whole module (it takes minutes); without Chromium, chromedriver or selenium every test is
skipped with the reason, before the demo runs. ``MEDRIVAL_REPORT_PAGE=/path/report.html`` tests an existing demo
report instead (for iterating on the page without a new demo run).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from browser import HEIGHT, missing, severe_messages, start_driver

_NUMBER = re.compile(r"^\s*[<>]?\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)", re.I)


@pytest.fixture(scope="module")
def demo_page(request):
    """The demo's report page (the session's demo run, shared with tests/test_study.py)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    from medrival.report.html import write_report

    if os.environ.get("MEDRIVAL_REPORT_PAGE"):
        return Path(os.environ["MEDRIVAL_REPORT_PAGE"])
    out, _, _ = request.getfixturevalue("demo_run")  # only once the browser is known to be here
    return write_report(out, n_resamples=300)


@pytest.fixture(scope="module")
def driver(demo_page):
    driver = start_driver()
    driver.get(demo_page.as_uri())
    yield driver
    driver.quit()


@pytest.fixture
def page(driver):
    """The page at its top, the console log read so far discarded."""
    driver.execute_script("window.scrollTo(0, 0);")
    driver.get_log("browser")
    return driver


def test_the_page_loads_without_console_errors_or_fetches(driver, demo_page):
    driver.get(demo_page.as_uri())  # a fresh load: its log is this test's
    assert severe_messages(driver) == []
    html = driver.page_source
    for section in ("RQ1", "RQ2", "RQ3"):
        assert section in html
    assert html.count("<svg") >= 5 and "demo-specialist-clip+zero_shot" in html
    assert "demo-generalist-vlm+vqa_lora" in html and "closed_accuracy" in html
    # The page's own script ran (headers became focusable) under the page's Content-Security-Policy.
    assert driver.execute_script("return document.querySelector('table.sortable th').tabIndex") == 0


def test_the_first_screen_answers_the_research_questions(page):
    texts = page.execute_script("""
        return ["rq1", "rq2", "rq3"].map(function (rq) {
          var node = document.getElementById("answer-" + rq);
          return [node.getBoundingClientRect().bottom, node.textContent];
        });""")
    for bottom, text in texts:
        assert bottom <= HEIGHT, "an RQ answer is below the first screen"
        assert "conclusive" in text and "comparison" in text


def _section_top(driver, section: str) -> tuple[float, bool]:
    """(top of the section in the viewport, whether the page is scrolled to its end)."""
    return tuple(driver.execute_script("""
        var node = document.getElementById(arguments[0]);
        var atEnd = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2;
        return [node.getBoundingClientRect().top, atEnd];""", section))


def test_every_contents_link_scrolls_to_its_section(page):
    from selenium.webdriver.common.by import By

    targets = [a.get_attribute("href").split("#", 1)[1] for a in page.find_elements(By.CSS_SELECTOR, "nav.toc a")]
    assert {"answer", "rq1", "rq2", "rq3", "datasets", "failed", "study", "provenance"} <= set(targets)
    for target in targets:
        page.execute_script("window.scrollTo(0, 0);")
        page.find_element(By.CSS_SELECTOR, f'nav.toc a[href="#{target}"]').click()
        top, at_end = _section_top(page, target)
        # A section near the end cannot reach the top of the window: then the page is at its end, section shown.
        assert abs(top) <= 2 or (at_end and 0 <= top < HEIGHT), (target, top)


def _first_numbers(driver, table_id: str, column: int) -> list[float]:
    texts = driver.execute_script("""
        var column = arguments[1];
        return Array.prototype.map.call(document.getElementById(arguments[0]).tBodies[0].rows,
                                        function (row) { return row.cells[column].textContent; });""",
                                  table_id, column)
    return [float(_NUMBER.match(text).group(1)) for text in texts if _NUMBER.match(text)]


def test_clicking_a_header_sorts_the_table_by_its_numbers(page):
    from selenium.webdriver.common.by import By

    headers = page.find_elements(By.CSS_SELECTOR, "#arms-table thead th")
    column = [h.text for h in headers].index("estimate [CI]")
    before = _first_numbers(page, "arms-table", column)
    assert len(before) > 10 and before != sorted(before)
    page.execute_script("arguments[0].scrollIntoView();", headers[column])
    headers[column].click()
    ascending = _first_numbers(page, "arms-table", column)
    assert ascending == sorted(before)  # "0.812 [0.770, 0.850]" sorts by 0.812
    headers[column].click()
    assert _first_numbers(page, "arms-table", column) == sorted(before, reverse=True)
    assert headers[column].get_attribute("aria-sort") == "descending"


def test_typing_in_a_filter_hides_the_rows_that_do_not_match(page):
    from selenium.webdriver.common.by import By

    box = page.find_element(By.ID, "arms-table-filter")
    page.execute_script("arguments[0].scrollIntoView();", box)
    box.send_keys("demo-xray zero_shot")
    rows = page.execute_script("""
        return Array.prototype.map.call(document.getElementById("arms-table").tBodies[0].rows,
                                        function (row) { return [row.hidden, row.textContent]; });""")
    shown = [text for hidden, text in rows if not hidden]
    assert shown and len(shown) < len(rows)
    assert all("demo-xray" in text and "zero_shot" in text for text in shown)
    box.clear()
    box.send_keys(" ")  # an empty query shows every row again
    assert page.execute_script("return document.querySelectorAll('#arms-table tbody tr[hidden]').length") == 0


# For every inline figure, the pairs of its text labels whose boxes, as laid out in the page, overlap by more than
# a pixel both ways (matplotlib writes text as <text> elements with svg.fonttype none).
_OVERLAPS = """
var found = [];
document.querySelectorAll("figure.plot svg").forEach(function (svg) {
  var boxes = Array.prototype.map.call(svg.querySelectorAll("text"), function (t) {
    return [t.getBoundingClientRect(), t.textContent];
  }).filter(function (b) { return b[0].width > 0 && b[0].height > 0; });
  for (var i = 0; i < boxes.length; i++) {
    for (var j = i + 1; j < boxes.length; j++) {
      var a = boxes[i][0], b = boxes[j][0];
      var w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      var h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) {
        found.push([svg.parentElement.id, boxes[i][1], boxes[j][1], w, h]);
      }
    }
  }
});
return found;
"""


def test_no_two_text_labels_of_any_figure_overlap(page):
    count = page.execute_script("return document.querySelectorAll('figure.plot svg text').length")
    assert count > 50  # the figures' labels are text in the page, so they can be measured
    overlaps = page.execute_script(_OVERLAPS)
    assert overlaps == [], overlaps[:10]


def test_a_screenshot_is_saved(page, tmp_path):
    png = tmp_path / "demo-report-first-screen.png"
    assert page.save_screenshot(str(png))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a blank page compresses to a few kB
