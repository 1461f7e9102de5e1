// Client-side scalar series of one run: the downsampled history from GET /metrics (with each
// point's wall time, ?with_time=true) plus the live points from the stream, and the smoothing
// the charts apply.

export class SeriesStore {
  constructor() {
    // name -> {steps: number[], values: (number|null)[], times: (number|null)[]}; times are Unix
    // seconds, null for live points (the stream carries none: a time axis reloads the history)
    this.series = new Map();
    this.timed = false;
  }

  static fromMetrics(response) {
    const store = new SeriesStore();
    store.timed = (response?.series ?? []).every((s) => s.wall_times); // times came with the points
    for (const s of response?.series ?? []) {
      const times = s.wall_times ? [...s.wall_times] : s.steps.map(() => null);
      store.series.set(s.name, { steps: [...s.steps], values: [...s.values], times });
    }
    return store;
  }

  // The earliest wall time of any series (null without one): time zero of the relative axis.
  startTime() {
    let start = null;
    for (const s of this.series.values()) {
      const first = s.times.find((t) => t !== null);
      if (first !== undefined && (start === null || first < start)) start = first;
    }
    return start;
  }

  names() {
    return [...this.series.keys()];
  }

  has(name) {
    return this.series.has(name) && this.series.get(name).steps.length > 0;
  }

  get(name) {
    return this.series.get(name) ?? { steps: [], values: [], times: [] };
  }

  // Appends a stream `metrics` payload {name: {steps, values}}; only points after the last step
  // of each series are kept (so a replayed or overlapping batch never duplicates a point).
  // Returns the accepted points in the same shape.
  append(delta) {
    const accepted = {};
    for (const [name, batch] of Object.entries(delta ?? {})) {
      let target = this.series.get(name);
      if (!target) {
        target = { steps: [], values: [], times: [] };
        this.series.set(name, target);
      }
      const last = target.steps.length ? target.steps[target.steps.length - 1] : -Infinity;
      const steps = [];
      const values = [];
      batch.steps.forEach((step, i) => {
        if (step > (steps.length ? steps[steps.length - 1] : last)) {
          steps.push(step);
          values.push(batch.values[i]);
        }
      });
      if (steps.length) {
        target.steps.push(...steps);
        target.values.push(...values);
        target.times.push(...steps.map(() => null));
        accepted[name] = { steps, values };
      }
    }
    return accepted;
  }
}

// Debiased exponential moving average (as TensorBoard's smoothing slider): with weight w,
// m_i = w m_{i-1} + (1 - w) v_i and the shown value is m_i / (1 - w^n) after n finite points.
// `state` carries m and n across calls, so live points continue the curve of the history.
// null (NaN/Inf on the server) stays null and does not move the average.
export function ema(values, weight, state = { m: 0, n: 0 }) {
  if (!weight) return values.slice();
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    state.m = weight * state.m + (1 - weight) * v;
    state.n += 1;
    return state.m / (1 - weight ** state.n);
  });
}

// Trailing moving average over the last `size` finite points (null stays null).
export function windowMean(values, size) {
  const out = [];
  const window = [];
  let sum = 0;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) {
      out.push(null);
      continue;
    }
    window.push(v);
    sum += v;
    if (window.length > size) sum -= window.shift();
    out.push(sum / window.length);
  }
  return out;
}

// Trailing min and max over the last `size` finite points: the band drawn under a smoothed line
// so that smoothing never hides an extreme.
export function windowExtremes(values, size) {
  const lo = [];
  const hi = [];
  const window = [];
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) {
      lo.push(null);
      hi.push(null);
      continue;
    }
    window.push(v);
    if (window.length > size) window.shift();
    lo.push(Math.min(...window));
    hi.push(Math.max(...window));
  }
  return { lo, hi };
}

// Points a smoothing weight w in [0, 1) stands for: the span of an EMA of that weight.
export const smoothingSpan = (weight) => Math.max(1, Math.round((1 + weight) / (1 - weight)));
