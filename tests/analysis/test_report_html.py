"""`wt-study analyze --format html` writes one self-contained page: its plots embedded as data URIs, its tables
whole even when a cell holds a '|'; a real headless browser opens it alone and every image loads."""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pandas as pd
import pytest
from synth import write_study

from analysis import cli
from analysis.render import markdown_to_html
from analysis.tables import md_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var out = document.createElement("pre");
  out.id = "wt-check";
  out.textContent = "images " + images.length + " loaded " + loaded + " tables " +
    document.querySelectorAll("table").length + " rows " + document.querySelectorAll("tr").length +
    " width " + document.documentElement.scrollWidth + " of " + window.innerWidth;
  document.body.appendChild(out);
});
</script>"""


class Page(HTMLParser):
    """What a reader sees of a page: each table's rows of cell texts, and each image's (alt, src)."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[tuple[str, str]] = []
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append((dict(attrs)["alt"], dict(attrs)["src"]))

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The tables of a markdown text as rows of cell texts, split at the '|' that are not escaped (the rule row
    left out, inline markup removed as a page shows it)."""
    tables, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|( :--- \|)+", line):
            if not previous.startswith("|"):
                tables.append([])
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            tables[-1].append([re.sub(r"\*\*|`", "", c.strip().replace("\\|", "|")) for c in cells])
        previous = line
    return tables


def test_a_pipe_inside_a_cell_is_escaped_and_the_page_shows_it_in_its_cell():
    frame = pd.DataFrame({"setting": ["lr 1e-3 | wd 0.1", "plain"], "loss": [1.5, 2.0], "a|b": ["x", "y"]})
    text = md_table(frame)
    lines = text.splitlines()
    assert lines[0] == "| setting | loss | a\\|b |" and lines[2] == "| lr 1e-3 \\| wd 0.1 | 1.5000 | x |"
    assert Page(markdown_to_html(text, "t")).tables == [
        [["setting", "loss", "a|b"], ["lr 1e-3 | wd 0.1", "1.5000", "x"], ["plain", "2", "y"]]
    ]  # before md_table escaped it, the '|' split the cell in two


def test_the_page_shows_markup_and_no_raw_html():
    page = markdown_to_html("# Study `s`\n\n- **bold** and *not shown* _(none)_\n\n<script>x</script>", "t")
    assert '<h1 id="study-s">Study <code>s</code></h1>' in page and "<strong>bold</strong>" in page
    assert "<em>not shown</em>" in page and "<em>(none)</em>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # a config value can never inject markup


@pytest.fixture(scope="module")
def html_report(tmp_path_factory):
    study = write_study(tmp_path_factory.mktemp("study"), name="mailed", budget_s=20.0)
    out = tmp_path_factory.mktemp("out")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser, "analyze")
    assert cli.run(parser.parse_args([str(study), "--out", str(out), "--format", "html"])) == 0
    return out


def test_the_html_report_embeds_every_plot(html_report):
    sources = Page((html_report / "report.html").read_text()).images
    pngs = sorted(p.name for p in html_report.glob("*.png"))
    assert len(pngs) >= 5 and sorted(f"{alt}.png" for alt, _ in sources) == pngs
    for alt, src in sources:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix), alt  # not a file next to the page
        assert base64.b64decode(src[len(prefix) :]) == (html_report / f"{alt}.png").read_bytes()
    assert base64.b64decode(sources[0][1].split(",", 1)[1]).startswith(PNG_SIGNATURE)


def test_the_first_screen_gives_the_verdicts_in_words_and_links_to_their_details(html_report):
    text = (html_report / "report.md").read_text()
    glance = text.split("\n## ", 1)[0]  # everything above the first section heading
    assert "| arm | reference | arm − ref [CI] | verdict |" in glance.replace("| seq_len ", "")
    assert "(#verdicts-in-detail)" in glance
    page = (html_report / "report.html").read_text()
    assert '<h2 id="verdicts-in-detail">' in page and 'href="#verdicts-in-detail"' in page


def test_the_html_report_shows_every_cell_of_the_markdown_tables(html_report):
    tables = Page((html_report / "report.html").read_text()).tables
    expected = markdown_tables((html_report / "report.md").read_text())
    assert len(tables) >= 4 and sum(len(row) for table in tables for row in table) > 100
    assert tables == expected


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no headless browser installed (looked for {', '.join(BROWSERS)}; apt-get install chromium)")


def test_a_headless_browser_opens_the_page_alone_and_every_image_loads(html_report, tmp_path):
    browser = _browser()
    page = (html_report / "report.html").read_text()
    alone = tmp_path / "mail" / "report.html"  # the page without its folder, as a mailed attachment is
    alone.parent.mkdir()
    alone.write_text(page.replace("</body>", CHECK + "</body>"))
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--window-size=1280,900",
            "--dump-dom",
            alone.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(
        r'id="wt-check">images (\d+) loaded (\d+) tables (\d+) rows (\d+) width (\d+) of (\d+)<', done.stdout
    )
    assert found, (done.returncode, done.stderr[-2000:])
    images, loaded, tables, rows, width, window = map(int, found.groups())
    # nothing off-screen in a 1280 px window: a wide table scrolls inside its own box, not the page
    assert window == 1280 and width <= window, (width, window)
    assert images == len(list(html_report.glob("*.png"))) and loaded == images
    assert tables == page.count("<table>") >= 4 and rows == page.count("<tr>")
