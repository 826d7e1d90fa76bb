"""The report's one inline script (sortable, filterable tables; TOC links open collapsed sections) and the
Content-Security-Policy that allows exactly that script and nothing else.

The policy names the script by its SHA-256, so no other script can run in the page even if one slipped into it,
and ``default-src 'none'`` forbids every fetch: the page works from disk, offline, and cannot phone home. The
script reads the page only through the DOM (``textContent``), never writes HTML, so it cannot un-escape a name.
"""
from __future__ import annotations

import base64
import hashlib

# Sorting reads a cell by its first number ("0.812 [0.77, 0.85]" -> 0.812, "<0.001" -> 0.001, "+0.05" -> 0.05);
# cells without one ("n/a", names) sort after numbers, as text. A second click on a header reverses the order.
SCRIPT = r"""
(function () {
  "use strict";
  var NUMBER = /^\s*[<>\u2264\u2265]?\s*([+\-\u2212]?(?:\d+\.?\d*|\.\d+)(?:e[+\-]?\d+)?)/i;
  function key(cell) {
    var text = cell ? cell.textContent.trim() : "";
    var match = NUMBER.exec(text);
    return match ? {num: parseFloat(match[1].replace("\u2212", "-")), text: text} : {num: null, text: text};
  }
  function compare(a, b) {
    if (a.num !== null && b.num !== null) { return a.num - b.num; }
    if (a.num !== null) { return -1; }
    if (b.num !== null) { return 1; }
    return a.text.localeCompare(b.text);
  }
  function sortBy(table, th, column) {
    var body = table.tBodies[0];
    var descending = th.getAttribute("aria-sort") === "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var order = compare(key(r1.cells[column]), key(r2.cells[column]));
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function filter(table, query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      row.hidden = !words.every(function (word) { return text.indexOf(word) >= 0; });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.tabIndex = 0;
      th.title = "click to sort";
      th.addEventListener("click", function () { sortBy(table, th, column); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th, column); }
      });
    });
    var box = document.getElementById(table.id + "-filter");
    if (box) { box.addEventListener("input", function () { filter(table, box.value); }); }
  });
  function reveal() {
    var target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") { node.open = true; }
    }
    if (target) { target.scrollIntoView(); }
  }
  window.addEventListener("hashchange", reveal);
  reveal();
})();
""".strip()


def script_hash(script: str = SCRIPT) -> str:
    """The CSP source expression of ``script``: "'sha256-<base64 digest>'" of its exact text."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy(script: str = SCRIPT) -> str:
    """Nothing may load; inline styles (the page's and matplotlib's) and this one script may run."""
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {script_hash(script)}; "
            "base-uri 'none'; form-action 'none'")
