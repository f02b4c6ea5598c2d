// The atlas's scripts; they work from file:// with no server, and under any sub-path.
"use strict";

// A layer's grid: filter by text and concept, sort, show each unit's top example.
(function () {
  const grid = document.getElementById("grid");
  if (!grid) return;
  const filter = document.getElementById("filter");
  const concept = document.getElementById("concept");
  const sort = document.getElementById("sort");
  const count = document.getElementById("count");
  const units = Array.from(grid.querySelectorAll(".unit"));

  function applyFilter() {
    const query = filter.value.trim().toLowerCase();
    const wanted = concept ? concept.value : "";
    let shown = 0;
    for (const unit of units) {
      // a number finds that channel; any other text searches numbers, labels and concepts
      const d = unit.dataset;
      const text = (d.channel + " " + d.label + " " + d.concept).toLowerCase();
      const match = (!query || (/^\d+$/.test(query) ? d.channel === query : text.includes(query)))
        && (!wanted || (wanted === "-" ? !d.concept : d.concept === wanted));
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
  if (concept) concept.addEventListener("change", applyFilter);
  sort.addEventListener("change", applySort);
  applyFilter();
})();

// Search across every layer: the index is plain scripts under search/, loaded on the first
// keystroke (index.js), then only the shards of the query's words and the blocks of the
// units a result shows.
(function () {
  const box = document.getElementById("search");
  const list = document.getElementById("search-results");
  if (!box || !list) return;
  const root = document.body.dataset.root || "";
  const LIMIT = 20;
  const loaded = {};  // script path -> promise
  let index = null;
  const shards = {};  // first letter -> {word: postings}
  const blocks = {};  // "layer-block" -> unit rows

  window.atlasSearch = {
    index(data) { index = data; },
    shard(key, table) { shards[key] = table; },
    units(layer, block, rows) { blocks[layer + "-" + block] = rows; },
  };

  function load(path) {
    if (!loaded[path]) {
      loaded[path] = new Promise((resolve) => {
        const script = document.createElement("script");
        script.src = root + "search/" + path;
        script.onload = resolve;
        script.onerror = resolve;  // a missing shard means no word starts with that letter
        document.head.appendChild(script);
      });
    }
    return loaded[path];
  }

  function words(text) {
    return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .split(/[^a-z0-9]+/).filter(Boolean);
  }

  // The units one word finds ("layer:channel" -> score): a channel number, a word of a
  // class label (best), of a detected concept (by IoU), or of a layer's name.
  function hits(term, layerHits) {
    const found = new Map();
    const add = (key, score) => found.set(key, Math.max(found.get(key) || 0, score));
    if (/^\d+$/.test(term)) {
      index.layers.forEach((layer, i) => { if (+term < layer.units) add(i + ":" + term, 90); });
    }
    for (const [word, postings] of Object.entries(shards[term[0]] || {})) {
      if (!word.startsWith(term)) continue;
      const prefix = word === term ? 0 : 40;
      for (const [layer, channel, kind, score] of postings) {
        add(layer + ":" + channel, (kind === 0 ? 100 : 50 + 10 * score) - prefix);
      }
    }
    index.layers.forEach((layer, i) => {
      const name = layer.name.toLowerCase();
      const whole = name === term || words(layer.name).includes(term);
      if (!whole && !name.startsWith(term)) return;
      const score = whole ? 30 : 20;
      if (layerHits) layerHits.push([i, score]);
      for (let c = 0; c < layer.units; c++) add(i + ":" + c, score);
    });
    return found;
  }

  // Units that match every word of the query, best first, and layers that match one word.
  function match(query) {
    const terms = words(query);
    const layerHits = [];
    let found = null;
    for (const term of terms) {
      const these = hits(term, terms.length === 1 ? layerHits : null);
      if (found === null) { found = these; continue; }
      const both = new Map();
      for (const [key, score] of these) if (found.has(key)) both.set(key, found.get(key) + score);
      found = both;
    }
    const units = [...(found || new Map())].map(([key, score]) => [...key.split(":").map(Number), score])
      .sort((a, b) => b[2] - a[2] || a[0] - b[0] || a[1] - b[1]);
    return { layers: layerHits.sort((a, b) => b[1] - a[1]), units: units.slice(0, LIMIT) };
  }

  function item(href, thumb, title, detail) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = root + href;
    if (thumb) {
      const img = document.createElement("img");
      img.src = root + thumb; img.width = 40; img.height = 40; img.alt = "";
      img.onerror = () => img.remove();
      a.appendChild(img);
    }
    const text = document.createElement("span");
    text.textContent = title;
    a.appendChild(text);
    if (detail) {
      const small = document.createElement("small");
      small.textContent = detail;
      a.appendChild(small);
    }
    li.appendChild(a);
    return li;
  }

  let latest = 0;
  async function search() {
    const query = box.value.trim();
    const ticket = ++latest;
    if (!query) { list.hidden = true; list.replaceChildren(); return; }
    await load("index.js");
    if (!index) return;
    const letters = [...new Set(words(query).map((w) => w[0]))].filter((k) => index.shards.includes(k));
    await Promise.all(letters.map((k) => load("t-" + k + ".js")));
    const result = match(query);
    const needed = [...new Set(result.units.map(([l, c]) => l + "-" + Math.floor(c / index.block)))];
    await Promise.all(needed.map((key) => load("u-" + key + ".js")));
    if (ticket !== latest) return;  // a newer query is on its way
    const items = [];
    for (const [i] of result.layers.slice(0, 3)) {
      const layer = index.layers[i];
      items.push(item(layer.page, "", "layer " + layer.name, layer.units + " units"));
    }
    for (const [l, c] of result.units) {
      const row = (blocks[l + "-" + Math.floor(c / index.block)] || [])[c % index.block];
      if (!row) continue;
      const [channel, page, thumb, label, concept] = row;
      const title = index.layers[l].name + " " + channel + (label ? " · " + label : "");
      items.push(item(page, thumb, title, concept ? "detects " + concept : ""));
    }
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "no unit matches";
      items.push(li);
    }
    list.replaceChildren(...items);
    list.hidden = false;
  }

  box.addEventListener("input", search);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      const first = list.querySelector("a");
      if (first) window.location.href = first.href;
    } else if (event.key === "Escape") {
      box.value = ""; search();
    }
  });
})();
