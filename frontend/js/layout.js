// The run page's panel layout as the user arranged it: hidden, collapsed and moved panels, kept in
// localStorage (one layout per browser, for every run). A shared link may override what is hidden
// for the page it opens (view.hidden), without touching the stored layout.

const KEY = "observatory.layout";

function read() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) ?? "{}");
    return {
      hidden: Array.isArray(stored.hidden) ? stored.hidden : [],
      collapsed: Array.isArray(stored.collapsed) ? stored.collapsed : [],
      order: stored.order && typeof stored.order === "object" ? stored.order : {},
    };
  } catch {
    return { hidden: [], collapsed: [], order: {} };
  }
}

export class PanelLayout {
  constructor({ hidden } = {}) {
    this.state = read();
    if (hidden) this.state.hidden = hidden; // from a link: this page only
    this.persist = !hidden;
  }

  save() {
    if (this.persist) localStorage.setItem(KEY, JSON.stringify(this.state));
  }

  orderOf(panel) {
    return this.state.order[panel.id] ?? panel.order;
  }

  isHidden(id) {
    return this.state.hidden.includes(id);
  }

  isCollapsed(id) {
    return this.state.collapsed.includes(id);
  }

  toggle(list, id, on) {
    const set = new Set(this.state[list]);
    if (on) set.add(id);
    else set.delete(id);
    this.state[list] = [...set];
    this.persist = true; // the user changed it: from now on it is theirs
    this.save();
  }

  // Swaps the positions of two panels (given in their current order).
  swap(a, b) {
    const [oa, ob] = [this.orderOf(a), this.orderOf(b)];
    this.state.order[a.id] = ob === oa ? ob + 0.5 : ob;
    this.state.order[b.id] = oa;
    this.persist = true;
    this.save();
  }

  reset() {
    this.state = { hidden: [], collapsed: [], order: {} };
    this.persist = true;
    this.save();
  }
}
