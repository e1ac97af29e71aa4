// The console's few scripts: the browser's time zone for sign-in, charts from the JSON each page carries,
// and closing an action form. No inline script anywhere (the Content-Security-Policy allows none).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const tz = document.querySelector("[data-browser-tz]");
  if (tz) {
    try { tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (_) { /* UTC */ }
  }
  drawCharts(document);
});

document.addEventListener("click", (event) => {
  const close = event.target.closest("[data-close]");
  if (close) {
    const form = close.closest("form");
    if (form && form.parentElement) form.parentElement.replaceChildren();
  }
});

// Without htmx (it failed to load), an action button opens the note form as a page of its own.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.action[data-href]");
  if (button && !window.htmx) window.location.href = button.dataset.href;
});

const PALETTE = ["#1f6feb", "#8250df", "#1a7f37", "#bf8700", "#cf222e", "#0a7ea4"];

function drawCharts(root) {
  if (!window.Chart) return;
  root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || canvas.dataset.drawn) return;
    const spec = JSON.parse(source.textContent);
    const twoAxes = spec.datasets.some((d) => d.yAxisID === "y2");
    const datasets = spec.datasets.map((d, i) => ({
      ...d,
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length] + (spec.type === "line" ? "33" : "cc"),
      tension: 0.2,
      fill: spec.type === "line" && i === 0,
    }));
    const scales = { y: { beginAtZero: true, title: { display: true, text: spec.yTitle } } };
    if (twoAxes) scales.y2 = { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } };
    if (datasets.some((d) => d.stack)) { scales.x = { stacked: true }; scales.y.stacked = true; }
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets },
      options: { responsive: true, maintainAspectRatio: false, animation: false, scales,
                 plugins: { legend: { position: "bottom" } } },
    });
    canvas.dataset.drawn = "true";
  });
}
