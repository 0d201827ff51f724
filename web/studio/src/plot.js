// Bar plots with uPlot (loaded with the pages that plot, not with the first paint).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLORS = ["#2453d6", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a"];

/**
 * Bars over categories ``labels`` into ``el`` (replacing what was there). Several ``series``
 * ([{label, values}]) are stacked: each bar is drawn at its running total, the first series at the
 * bottom. ``title`` describes the plot for screen readers (the pages put the numbers in a table too).
 */
export function bars(el, { title, labels, series, yLabel }) {
  el.replaceChildren();
  const width = Math.max(280, el.clientWidth || 600);
  const xs = labels.map((_, i) => i);
  const totals = series.map((_, i) =>
    labels.map((__, d) => series.slice(0, i + 1).reduce((sum, s) => sum + (s.values[d] || 0), 0)),
  );
  const order = series.map((_, i) => i).reverse(); // the tallest (running total) first, the rest over it
  const opts = {
    title,
    width,
    height: 220,
    legend: { show: series.length > 1 },
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
    axes: [{ values: (_, ticks) => ticks.map((t) => labels[t] ?? ""), space: 40 }, { label: yLabel, size: 60 }],
    series: [
      {},
      ...order.map((i) => ({
        label: series[i].label,
        fill: COLORS[i % COLORS.length],
        stroke: COLORS[i % COLORS.length],
        paths: uPlot.paths.bars({ size: [0.7, 64] }),
        points: { show: false },
      })),
    ],
  };
  const plot = new uPlot(opts, [xs, ...order.map((i) => totals[i])], el);
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", title);
  return plot;
}
