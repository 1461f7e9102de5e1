// Page-side checks of the issue-15 dashboard tests, added to a page as window.pageChecks
// (tests/e2e/dashboard_session.py: checks()). Each returns plain data for the test to assert on.
window.pageChecks = (() => {
  const plots = () => [...document.querySelectorAll(".js-plotly-plot")].filter((el) => el._fullLayout);

  // CSS colours (names, hex, var(--x)) resolved to the rgb() strings the browser computes.
  function resolve(colour) {
    const probe = document.createElement("span");
    probe.style.color = colour;
    document.body.append(probe);
    const value = getComputedStyle(probe).color;
    probe.remove();
    return value;
  }

  // Charts whose drawing is not the width of their element, or pokes out of their card.
  function uncontained() {
    const out = [];
    for (const plot of plots()) {
      if (!plot.offsetParent) continue;
      const card = plot.closest(".card").getBoundingClientRect();
      const svg = plot.querySelector(".main-svg").getBoundingClientRect();
      const own = plot.getBoundingClientRect();
      const outside = (box) => box.left < card.left - 1 || box.right > card.right + 1 || box.bottom > card.bottom + 1;
      if (Math.abs(svg.width - own.width) > 2 || outside(svg)) {
        out.push({ id: plot.id, svg: [svg.width, svg.right, svg.bottom], own: own.width, card: [card.right, card.bottom] });
      }
      for (const title of plot.querySelectorAll(".g-xtitle, .g-ytitle, .g-y2title")) {
        const box = title.getBoundingClientRect();
        if (box.width && outside(box)) out.push({ id: plot.id, title: title.textContent });
      }
    }
    return out;
  }

  // Every chart's font and axes in the page's theme colours.
  function themed() {
    const fg = resolve("var(--fg)");
    const grid = resolve("var(--grid)");
    const wrong = [];
    for (const plot of plots()) {
      const layout = plot._fullLayout;
      if (resolve(layout.font.color) !== fg) wrong.push(`${plot.id}: font ${layout.font.color}`);
      const axes = Object.keys(layout)
        .filter((k) => /^[xy]axis\d*$/.test(k))
        .map((k) => [k, layout[k]]);
      if (layout.scene?.xaxis) for (const k of ["xaxis", "yaxis", "zaxis"]) axes.push([`scene.${k}`, layout.scene[k]]);
      for (const [key, axis] of axes) {
        if (axis.showgrid && resolve(axis.gridcolor) !== grid) wrong.push(`${plot.id} ${key}: grid ${axis.gridcolor}`);
        const ticks = axis.tickfont?.color ?? layout.font.color;
        if (axis.visible !== false && resolve(ticks) !== fg) wrong.push(`${plot.id} ${key}: ticks ${ticks}`);
      }
    }
    return { theme: document.documentElement.dataset.theme ?? null, fg, wrong };
  }

  // The runs table's horizontal overflow and the controls cut at its right edge.
  function tableOverflow() {
    const wrap = document.querySelector(".table-wrap");
    const edge = wrap.getBoundingClientRect().right;
    const cut = [...document.querySelectorAll("#runs-table button:not([hidden]), #runs-table .badge")]
      .filter((el) => el.offsetParent && el.getBoundingClientRect().right > edge + 0.5)
      .map((el) => el.textContent);
    return { scroll: wrap.scrollWidth - wrap.clientWidth, cut };
  }

  // The widest option of a <select> against the room its box has for text.
  function selectFits(id) {
    const select = document.getElementById(id);
    const probe = document.createElement("span");
    probe.style.font = getComputedStyle(select).font;
    probe.style.whiteSpace = "pre";
    document.body.append(probe);
    const widest = Math.max(
      ...[...select.options].map((o) => {
        probe.textContent = o.textContent;
        return probe.getBoundingClientRect().width;
      }),
    );
    probe.remove();
    return { widest, room: select.clientWidth - 28 }; // the arrow and the padding
  }

  // A chart's legend: the colours of the traces whose name matches `pattern`, whether it covers
  // the plot area or scrolls, and how many of its entries are in view.
  function legend(id, pattern) {
    const plot = document.getElementById(id);
    const named = plot.data.filter((t) => new RegExp(pattern).test(t.name));
    const colours = named.map((t) => t.marker?.color ?? t.line?.color);
    const box = plot.querySelector(".legend").getBoundingClientRect();
    const area = plot.querySelector(".nsewdrag").getBoundingClientRect();
    const apart = box.right <= area.left || box.left >= area.right || box.bottom <= area.top || box.top >= area.bottom;
    const scrollbar = plot.querySelector(".legend .scrollbar");
    const items = [...plot.querySelectorAll(".legend .traces")].filter((t) => {
      const r = t.getBoundingClientRect();
      return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
    });
    return {
      colours,
      overlap: !apart,
      scrolls: Boolean(scrollbar && scrollbar.getBoundingClientRect().height > 0),
      items: items.length,
    };
  }

  // The drawn ticks of a log y axis: value and label.
  function logTicks(id) {
    const axis = document.getElementById(id)._fullLayout.yaxis;
    return axis._vals.map((v) => ({ value: 10 ** v.x, text: v.text }));
  }

  // {panel: {run id: [line colours of its legend traces]}} of compared runs ("#<id> …" traces).
  function runColours(panels) {
    const out = {};
    for (const panel of panels) {
      const runs = {};
      for (const trace of document.getElementById(`plot-${panel}`).data) {
        const run = trace.name.match(/^#(\d+) /)?.[1];
        if (run && trace.showlegend !== false) (runs[run] ??= new Set()).add(trace.line.color);
      }
      out[panel] = Object.fromEntries(Object.entries(runs).map(([run, set]) => [run, [...set]]));
    }
    return out;
  }

  return { uncontained, themed, tableOverflow, selectFits, legend, logTicks, runColours };
})();
