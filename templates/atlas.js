// The atlas's scripts; they work from file:// with no server, and under any sub-path.
"use strict";

// Pictures that share a file (thumbnail sheets, example strips) are CSS sprites whose file
// is set when they come into view, so a page loads only the sheets on screen.
const atlasRoot = document.body.dataset.root || "";
const atlasSprites = (function () {
  const show = (el) => {
    el.style.backgroundImage = 'url("' + atlasRoot + el.dataset.src + '")';
    el.removeAttribute("data-src");
  };
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) { show(entry.target); observer.unobserve(entry.target); }
      }
    }, { rootMargin: "300px" })
    : null;
  const watch = (scope) => {
    for (const el of scope.querySelectorAll(".sprite[data-src]")) {
      if (observer) observer.observe(el); else show(el);
    }
  };
  watch(document);
  return { watch };
})();

// A sprite element for [file, x, y, w, h, file w, file h] (as the templates' sprite macro).
function atlasSprite(record, label, className) {
  const [src, x, y, w, h, width, height] = record;
  const el = document.createElement("span");
  el.className = "sprite " + className;
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", label);
  el.dataset.src = src;
  const g = (v) => Number(v.toPrecision(4));
  el.style.backgroundSize = g(width / w * 100) + "% " + g(height / h * 100) + "%";
  el.style.backgroundPosition = (width > w ? g(x / (width - w) * 100) : 0) + "% "
    + (height > h ? g(y / (height - h) * 100) : 0) + "%";
  el.style.aspectRatio = w + "/" + h;
  return el;
}

// A layer's grid: its first units are in the page; the rest come from chunk scripts,
// loaded when the reader scrolls past them or filters or sorts (over every unit).
(function () {
  const grid = document.getElementById("grid");
  if (!grid) return;
  const PAGE = 120;
  const filter = document.getElementById("filter");
  const concept = document.getElementById("concept");
  const sort = document.getElementById("sort");
  const count = document.getElementById("count");
  const more = document.getElementById("more");
  const toggle = document.getElementById("examples-toggle");
  const inputsToggle = document.getElementById("inputs-toggle");
  const layer = (document.querySelector("h1 code") || {}).textContent || "";
  const total = parseInt(grid.dataset.count, 10);
  const chunks = JSON.parse(grid.dataset.chunks || "[]");
  let rows = null;  // every unit's record, once the chunks are loaded
  let view = null;  // the records shown, filtered and sorted
  let loading = null;

  window.atlasLayer = { parts: [], units(i, part) { this.parts[i] = part; } };

  function load() {
    if (!loading) {
      loading = Promise.all(chunks.map((path) => new Promise((resolve) => {
        const script = document.createElement("script");
        script.src = atlasRoot + path;
        script.onload = script.onerror = resolve;
        document.head.appendChild(script);
      }))).then(() => { rows = [].concat(...window.atlasLayer.parts.filter(Boolean)); });
    }
    return loading;
  }

  function card(row) {
    const a = document.createElement("a");
    a.className = "unit" + (row.e ? " failed" : "");
    a.href = atlasRoot + row.p;
    a.dataset.channel = row.c; a.dataset.label = row.l; a.dataset.concept = row.k;
    a.dataset.objective = row.o === null ? "" : row.o;
    a.dataset.ratio = row.r === null ? "" : row.r;
    if (row.t) {
      a.appendChild(atlasSprite(row.t, layer + " channel " + row.c + (row.l ? " (" + row.l + ")" : ""), "thumb"));
    } else {
      const missing = document.createElement("span");
      missing.className = "missing"; missing.textContent = "failed";
      a.appendChild(missing);
    }
    if (row.x) {
      const top = atlasSprite(row.x, "top dataset example of channel " + row.c, "top-example");
      top.hidden = !(toggle && toggle.checked);
      a.appendChild(top);
    }
    if (row.n) {
      const input = atlasSprite(row.n, "strongest input of channel " + row.c, "top-input");
      input.hidden = !(inputsToggle && inputsToggle.checked);
      a.appendChild(input);
    }
    const caption = document.createElement("span");
    caption.className = "caption";
    caption.textContent = row.c + (row.l ? " · " + row.l : "");
    if (row.r !== null) {
      const ratio = document.createElement("span");
      ratio.className = "ratio"; ratio.textContent = row.r.toFixed(2) + "×";
      caption.append(" ", ratio);
    }
    a.appendChild(caption);
    if (row.k) {
      const c = document.createElement("span");
      c.className = "concept"; c.textContent = row.k;
      a.appendChild(c);
    }
    return a;
  }

  function matches(row) {
    const query = filter.value.trim().toLowerCase();
    const wanted = concept ? concept.value : "";
    // a number finds that channel; any other text searches numbers, labels and concepts
    const text = (row.c + " " + row.l + " " + row.k).toLowerCase();
    return (!query || (/^\d+$/.test(query) ? String(row.c) === query : text.includes(query)))
      && (!wanted || (wanted === "-" ? !row.k : row.k === wanted));
  }

  function order(list) {
    const key = sort.value;
    const number = (v) => (v === null || !Number.isFinite(v) ? -Infinity : v);
    const value = (r) => key === "objective" ? -number(r.o) : key === "ratio" ? -number(r.r) : r.c;
    return list.slice().sort((a, b) => value(a) - value(b) || a.c - b.c);
  }

  function status() {
    const shown = view ? view.length : total;
    count.textContent = shown + " of " + total + " channels";
    const left = (view ? view.length : total) - grid.children.length;
    more.textContent = left > 0 ? left + " more units below" : "";
  }

  function append() {
    const start = grid.children.length;
    const part = view.slice(start, start + PAGE).map(card);
    grid.append(...part);
    atlasSprites.watch(grid);
    status();
  }

  async function refresh() {
    grid.dataset.busy = "1";
    await load();
    view = order(rows.filter(matches));
    grid.replaceChildren();
    append();
    grid.dataset.busy = "0";
  }

  async function next() {
    if (grid.children.length >= (view ? view.length : total)) return;
    if (!view) { await load(); view = order(rows.filter(matches)); }
    append();
  }

  if ("IntersectionObserver" in window) {
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) next();
    }, { rootMargin: "600px" }).observe(more);
  }
  for (const [box, kind] of [[toggle, "top-example"], [inputsToggle, "top-input"]]) {
    if (!box) continue;
    box.addEventListener("change", () => {
      for (const el of grid.querySelectorAll("." + kind)) el.hidden = !box.checked;
      grid.classList.toggle("with-" + kind, box.checked);
    });
  }
  filter.addEventListener("input", refresh);
  if (concept) concept.addEventListener("change", refresh);
  sort.addEventListener("change", refresh);
  window.atlasLayer.ready = () => load().then(() => rows.length);
  status();
})();

// A unit page's "copy link": its address on the clipboard (or selected, to copy by hand).
(function () {
  const button = document.querySelector(".copy-link");
  if (!button) return;
  button.addEventListener("click", async () => {
    const address = window.location.href.split("#")[0];
    try {
      await navigator.clipboard.writeText(address);
      button.textContent = "link copied";
    } catch (error) {
      const field = document.createElement("input");
      field.value = address; field.readOnly = true; field.className = "copy-field";
      button.replaceWith(field);
      field.select();
    }
  });
})();

// Search across every layer: the index is plain scripts under search/, loaded on the first
// keystroke (index.js), then only the shards of the query's words and the blocks of the
// units a result shows.
(function () {
  const box = document.getElementById("search");
  const list = document.getElementById("search-results");
  if (!box || !list) return;
  const root = atlasRoot;
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
    if (thumb) a.appendChild(atlasSprite(thumb, "", "thumb"));
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
      const [channel, page, label, concept, thumb] = row;
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
    atlasSprites.watch(list);
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

// An activation atlas page: wheel or pinch to zoom, drag to pan, hover a cell for its
// count, class and real patches. Icons load as they come into view (atlasSprites).
(function () {
  const view = document.getElementById("map");
  if (!view) return;
  const plane = view.querySelector(".plane");
  const info = document.getElementById("cell-info");
  const label = document.getElementById("map-scale");
  const MAX = 24;
  let scale = 1, x = 0, y = 0, moved = 0;
  const pointers = new Map();

  const apply = () => {
    const size = view.clientWidth;
    x = Math.min(0, Math.max(size - size * scale, x));
    y = Math.min(0, Math.max(size - size * scale, y));
    plane.style.transform = "translate(" + x + "px," + y + "px) scale(" + scale + ")";
    view.dataset.scale = scale.toFixed(3);
    view.dataset.x = Math.round(x);
    view.dataset.y = Math.round(y);
    if (label) label.textContent = scale > 1 ? scale.toFixed(1) + "×" : "";
  };
  const zoom = (factor, cx, cy) => {
    const next = Math.min(MAX, Math.max(1, scale * factor));
    x = cx - (cx - x) * (next / scale);
    y = cy - (cy - y) * (next / scale);
    scale = next;
    apply();
  };
  const local = (e) => {
    const r = view.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };

  view.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoom(Math.exp(-e.deltaY * 0.002), ...local(e));
  }, { passive: false });
  view.addEventListener("pointerdown", (e) => {
    pointers.set(e.pointerId, local(e));
    moved = 0;
  });
  view.addEventListener("pointermove", (e) => {
    if (!pointers.has(e.pointerId)) return;
    const [px, py] = pointers.get(e.pointerId);
    const [nx, ny] = local(e);
    if (pointers.size === 2) {
      const [other] = [...pointers].filter(([id]) => id !== e.pointerId).map(([, p]) => p);
      const before = Math.hypot(px - other[0], py - other[1]);
      const after = Math.hypot(nx - other[0], ny - other[1]);
      if (before > 0) zoom(after / before, (nx + other[0]) / 2, (ny + other[1]) / 2);
    } else {
      x += nx - px;
      y += ny - py;
      moved += Math.abs(nx - px) + Math.abs(ny - py);
      if (moved > 4) { view.classList.add("dragging"); view.setPointerCapture(e.pointerId); }
      apply();
    }
    pointers.set(e.pointerId, [nx, ny]);
  });
  const release = (e) => {
    pointers.delete(e.pointerId);
    if (!pointers.size) view.classList.remove("dragging");
  };
  view.addEventListener("pointerup", release);
  view.addEventListener("pointercancel", release);
  view.addEventListener("click", (e) => { if (moved > 4) e.preventDefault(); }, true);

  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => {
      const c = view.clientWidth / 2;
      if (button.dataset.zoom === "reset") { scale = 1; x = 0; y = 0; apply(); }
      else zoom(button.dataset.zoom === "in" ? 1.5 : 1 / 1.5, c, c);
    });
  }

  const show = (cell) => {
    if (!info) return;
    info.textContent = "";
    const text = document.createElement("span");
    text.textContent = "cell " + cell.dataset.index + " · " + cell.dataset.count + " activations"
      + (cell.dataset.class ? " · " + cell.dataset.class : "");
    info.append(text);
    for (const row of JSON.parse(cell.dataset.patches || "[]")) {
      info.append(atlasSprite(row, "a real patch of cell " + cell.dataset.index, "patch"));
    }
    info.hidden = false;
    atlasSprites.watch(info);
  };
  for (const cell of plane.querySelectorAll(".cell")) {
    cell.addEventListener("mouseenter", () => show(cell));
    cell.addEventListener("focus", () => show(cell));
  }
  apply();
})();
