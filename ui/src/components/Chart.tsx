import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** `color` names a CSS custom property (e.g. "--accent"): canvases cannot use var(). */
export type Series = { label: string; color: string };

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/** A small live line chart (uPlot): x in seconds since the epoch over a fixed window that
 * scrolls with the newest point, y in 0–100. */
export function Chart({
  data,
  series,
  theme,
  height = 120,
  windowS = 600,
}: {
  data: uPlot.AlignedData;
  series: Series[];
  theme: string;
  height?: number;
  windowS?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: el.clientWidth || 300,
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: (_u, _min, max) => [max - windowS, max] }, y: { range: [0, 100] } },
      axes: [
        { stroke: cssVar("--muted"), grid: { show: false }, ticks: { stroke: cssVar("--grid") }, size: 28 },
        { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid") }, ticks: { show: false }, size: 36 },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: cssVar(s.color),
          fill: `${cssVar(s.color)}22`,
          width: 2,
          points: { show: false },
        })),
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Rebuild only when the labels (the language) or the theme change; data flows through setData.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [series.map((s) => s.label).join("|"), theme, height, windowS]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return <div className="chart" ref={box} />;
}
