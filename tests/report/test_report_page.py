"""The report of a real LLM run, opened in a real headless Chromium as a newcomer would: the row that went
to the billing sink shows why (its path, what each step changed, the prompt and the answer, the sink and
its artifact); hostile row values stay text; the screenshot is a real rendering."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from elspeth.report.page import embedded_json

from .browser import dump_dom, png_pixels, screenshot
from .conftest import BILLING_ROW, BREAKOUT, FAILED_ROW, HOSTILE, HOSTILE_ROW, RETRIED_ROW
from .dom import Dom


@pytest.fixture(scope="module")
def page(llm_run, tmp_path_factory):
    target = tmp_path_factory.mktemp("report") / "run.html"
    result = llm_run.cli("report", llm_run.run_id, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert f"Wrote {target}" in result.stdout and "5 of 5 rows in full" in result.stdout
    return target


def _open(page, tmp_path, fragment: str = "") -> Dom:
    return Dom(dump_dom(tmp_path / "browser", page.as_uri() + fragment))


def test_why_a_ticket_went_to_the_billing_sink(llm_run, page, tmp_path):
    dom = _open(page, tmp_path, f"#row={BILLING_ROW}")
    assert dom.text("row-why") == "Token 0 routed to sink:billing, decided at transform:by_category."
    assert dom.text("row-path") == (
        "source:csv → transform:classify (+category) → transform:by_category → sink:billing"
    )
    detail = dom.text("row-detail")
    # The route's recorded options say why "billing" went there; the classify step says where it came from.
    route_options = '{"field":"category","routes":{"billing":"billing"}}'
    assert f"transform:by_category (route) was configured with: {route_options}" in detail
    assert 'category (added) "billing"' in detail
    assert "Subject: Invoice shows wrong VAT" in detail and "Answer with the label only." in detail
    assert "answer: billing" in detail
    # The artifact it landed in, with the hash of the bytes the sink stored.
    billing = (llm_run.root / "out" / "billing.csv").read_bytes()
    assert "billing.csv" in detail and hashlib.sha256(billing).hexdigest() in detail


def test_row_values_are_text_never_markup(page, tmp_path):
    html = page.read_text(encoding="utf-8")
    assert BREAKOUT not in html and "sk-report-secret-9876" not in html
    dom = _open(page, tmp_path, f"#row={HOSTILE_ROW}")
    detail = dom.text("row-detail")
    assert HOSTILE in detail and BREAKOUT in detail
    assert dom.tags["img"] == 0 and dom.tags["script"] == 2
    assert "pwned" not in html.split("<main>")[0]
    assert re.search(r"<title>Elspeth run llm-report</title>", dump_dom(tmp_path / "b2", page.as_uri()))


def test_a_failed_call_its_retry_and_a_failed_row(page, tmp_path):
    dom = _open(page, tmp_path, f"#row={RETRIED_ROW}")
    assert dom.text("row-why") == "Token 3 completed: reached the end of the pipeline and was written to sink:triaged."
    detail = dom.text("row-detail")
    assert re.search(r"call 0: llm azure_openai error .*InternalServerError.*500.*call 1: llm azure_openai ok", detail)
    assert "answer: bug" in detail
    assert f"row {RETRIED_ROW}" in dom.text("failed-call-table")

    failed = _open(page, tmp_path, f"#row={FAILED_ROW}")
    why = failed.text("row-why")
    assert why.startswith("Token 4 failed at transform:classify to sink:failed") and "content" in why


def test_fragment_filters_the_row_list(page, tmp_path):
    dom = _open(page, tmp_path, "#sink=sink:billing")
    rows = dom.text("row-list")
    assert "row 0" in rows and "row 2" in rows and "row 1" not in rows and "row 3" not in rows
    assert "2 rows match" in dom.text("rows")
    assert "every row of the run" in dom.text("rows-note")


def test_the_page_loads_nothing_from_the_network(page):
    html = page.read_text(encoding="utf-8")
    outside_data = re.sub(r'<script type="application/json" id="report-data">.*?</script>', "", html, flags=re.S)
    assert "default-src 'none'" in outside_data
    assert "<link" not in outside_data and " src=" not in outside_data and "url(http" not in outside_data


def test_screenshot_is_a_real_rendering(page, tmp_path):
    shot = tmp_path / "row.png"
    screenshot(tmp_path / "browser", page.as_uri() + f"#row={BILLING_ROW}", shot, 1000, 800)
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1000, 800)
    step = len(rows[0]) // width
    pixels = [row[x : x + 3] for row in rows[::8] for x in range(0, len(row), step * 8)]
    white = sum(p == b"\xff\xff\xff" for p in pixels)
    assert 0.03 < 1 - white / len(pixels) < 0.97, "the page rendered blank or all ink"
    assert len(set(pixels)) > 20, "too few colours for text, tables and badges"


def test_embedded_json_cannot_end_its_script_element():
    text = embedded_json({"v": "</script><script>x()</script> & \u2028 <!--"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text

    assert json.loads(text) == {"v": "</script><script>x()</script> & \u2028 <!--"}
