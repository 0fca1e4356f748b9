// The report's one script: renders each figure from its JSON with Plotly when its section is
// first shown (a closed method section costs nothing at load), sorts tables by a header
// click, and opens a method's section from the leaderboard.
(function () {
  "use strict";
  var config = {responsive: true, displaylogo: false};

  function render(root) {
    root.querySelectorAll(".figure:not([data-rendered])").forEach(function (div) {
      var closed = div.closest("details:not([open])");
      if (closed) { return; }
      var spec = JSON.parse(document.getElementById(div.dataset.figure).textContent);
      div.setAttribute("data-rendered", "1");
      Plotly.newPlot(div, spec.data, spec.layout, config);
    });
  }

  function sortBy(th) {
    var table = th.closest("table");
    var body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var cell = row.cells[index];
      var raw = cell.getAttribute("data-sort");
      var value = raw === null ? cell.textContent.trim() : raw;
      var number = parseFloat(value);
      return isNaN(number) ? value.toLowerCase() : number;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var missingX = x === "", missingY = y === "";
      if (missingX !== missingY) { return missingX ? 1 : -1; }  // empty cells last
      if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function openMethod(id) {
    var target = document.getElementById(id);
    if (!target || target.tagName !== "DETAILS") { return; }
    target.open = true;
    render(target);
    target.scrollIntoView({block: "start"});
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("th.sortable").forEach(function (th) {
      th.addEventListener("click", function () { sortBy(th); });
    });
    document.querySelectorAll("details").forEach(function (d) {
      d.addEventListener("toggle", function () { if (d.open) { render(d); } });
    });
    document.querySelectorAll("a.method-link").forEach(function (a) {
      a.addEventListener("click", function (event) {
        event.preventDefault();
        var id = a.getAttribute("href").slice(1);
        history.replaceState(null, "", "#" + id);
        openMethod(id);
      });
    });
    render(document);
    if (location.hash) { openMethod(location.hash.slice(1)); }
  });
})();
