// Filter and sort a layer's grid in the browser; works from file:// with no server.
(function () {
  "use strict";
  const grid = document.getElementById("grid");
  if (!grid) return;
  const filter = document.getElementById("filter");
  const sort = document.getElementById("sort");
  const count = document.getElementById("count");
  const units = Array.from(grid.querySelectorAll(".unit"));

  function applyFilter() {
    const query = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const unit of units) {
      // a number finds that channel; any other text searches channel numbers and labels
      const match = !query || (/^\d+$/.test(query)
        ? unit.dataset.channel === query
        : (unit.dataset.channel + " " + unit.dataset.label.toLowerCase()).includes(query));
      unit.hidden = !match;
      if (match) shown += 1;
    }
    count.textContent = shown + " of " + units.length + " channels";
  }

  function applySort() {
    const key = sort.value;
    const number = (text) => { const v = parseFloat(text); return Number.isFinite(v) ? v : -Infinity; };
    const value = (u) => key === "objective" ? -number(u.dataset.objective)
                       : key === "ratio" ? -number(u.dataset.ratio)
                       : parseInt(u.dataset.channel, 10);
    units.slice().sort((a, b) => value(a) - value(b)).forEach((u) => grid.appendChild(u));
  }

  const toggle = document.getElementById("examples-toggle");
  if (toggle) {
    toggle.addEventListener("change", () => {
      for (const img of grid.querySelectorAll(".top-example")) img.hidden = !toggle.checked;
      grid.classList.toggle("with-examples", toggle.checked);
    });
  }

  filter.addEventListener("input", applyFilter);
  sort.addEventListener("change", applySort);
  applyFilter();
})();
