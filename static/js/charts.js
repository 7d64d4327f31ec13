// Charts of survey results and of the dashboard, drawn with ECharts from the figures the server
// put on the page (a <script type="application/json"> made by json_script). The tables beside
// them hold the same figures, so the page says everything without this script. A chart given
// links (one per bar or slice; per series for stacked bars) opens the link clicked on.
(function () {
  "use strict";

  // Net Promoter Score groups: 0-6 detractors, 7-8 passives, 9-10 promoters.
  var NPS_COLORS = { detractor: "#d64545", passive: "#a0a7b4", promoter: "#2e9d57" };

  function colors(element) {
    // The stylesheet gives .chart its text colour and, as its caret colour, the accent; read
    // back computed, they follow the light or dark theme.
    var style = window.getComputedStyle(element);
    return { text: style.color, accent: style.caretColor || "#1f6feb" };
  }

  function npsColor(score) {
    if (score >= 9) { return NPS_COLORS.promoter; }
    if (score >= 7) { return NPS_COLORS.passive; }
    return NPS_COLORS.detractor;
  }

  function axisLabel(palette) {
    return { color: palette.text, hideOverlap: true };
  }

  function option(chart, palette) {
    // Tooltips drawn on the canvas ("richText"): the HTML ones carry style attributes, which
    // the Content Security Policy refuses.
    var base = {
      animationDuration: 400,
      textStyle: { color: palette.text },
      tooltip: { trigger: "item", renderMode: "richText" },
    };
    if (chart.kind === "pie") {
      // A colour of its own for up to nine slices (RFM has seven segments).
      base.color = [palette.accent, "#a0a7b4", "#f0b429", "#2e9d57", "#d64545", "#8e6cc8", "#17a2b8", "#e8743b", "#5b7083"];
      base.legend = { type: "scroll", bottom: 0, textStyle: { color: palette.text } };
      base.series = [{
        type: "pie",
        radius: ["36%", "62%"],
        center: ["50%", "42%"],
        label: { color: palette.text, formatter: "{d}%" },
        data: chart.labels.map(function (label, i) { return { name: label, value: chart.counts[i] }; }),
      }];
      return base;
    }
    if (chart.kind === "stacked") {
      base.color = [palette.accent, "#2e9d57", "#f0b429", "#d64545", "#8e6cc8", "#17a2b8", "#e8743b", "#a0a7b4", "#5b7083"];
      base.legend = { type: "scroll", bottom: 0, textStyle: { color: palette.text } };
      base.grid = { left: 8, right: 8, top: 16, bottom: 36, containLabel: true };
      base.xAxis = { type: "category", data: chart.labels, axisLabel: axisLabel(palette) };
      base.yAxis = { type: "value", minInterval: 1, axisLabel: axisLabel(palette) };
      base.series = chart.series.map(function (series) {
        return { type: "bar", stack: "total", name: series.name, data: series.data, barMaxWidth: 36 };
      });
      return base;
    }
    if (chart.kind === "funnel") {
      base.color = [palette.accent, "#17a2b8", "#2e9d57", "#f0b429", "#d64545"];
      base.series = [{
        type: "funnel",
        sort: "none",
        left: "5%",
        width: "60%",
        minSize: "8%",
        label: { color: palette.text, position: "right", formatter: "{b}: {c}" },
        data: chart.labels.map(function (label, i) { return { name: label, value: chart.counts[i] }; }),
      }];
      return base;
    }
    if (chart.kind === "bars") {
      base.grid = { left: 8, right: 24, top: 8, bottom: 8, containLabel: true };
      base.xAxis = { type: "value", minInterval: 1, axisLabel: axisLabel(palette) };
      base.yAxis = {
        type: "category",
        inverse: true,
        data: chart.labels,
        axisLabel: { color: palette.text, width: 160, overflow: "truncate" },
      };
      base.series = [{ type: "bar", data: chart.counts, itemStyle: { color: palette.accent }, barMaxWidth: 28 }];
      return base;
    }
    base.grid = { left: 8, right: 8, top: 16, bottom: 8, containLabel: true };
    base.xAxis = { type: "category", data: chart.labels, axisLabel: axisLabel(palette) };
    base.yAxis = { type: "value", minInterval: 1, axisLabel: axisLabel(palette) };
    base.series = [{
      type: "bar",
      barMaxWidth: 36,
      data: chart.counts.map(function (count, i) {
        var color = chart.kind === "nps" ? npsColor(Number(chart.labels[i])) : palette.accent;
        return { value: count, itemStyle: { color: color } };
      }),
    }];
    return base;
  }

  function height(chart) {
    if (chart.kind === "bars") { return Math.max(160, 36 + 34 * chart.labels.length); }
    if (chart.kind === "stacked") { return 320; }
    return 260;
  }

  function linkOf(chart, params) {
    var links = chart.kind === "stacked" ? (chart.series[params.seriesIndex] || {}).links : chart.links;
    return links ? links[params.dataIndex] : null;
  }

  function figures() {
    var charts = [];
    ["results-charts", "dashboard-charts"].forEach(function (id) {
      var data = document.getElementById(id);
      if (data) { charts = charts.concat(JSON.parse(data.textContent)); }
    });
    return charts;
  }

  function draw() {
    if (!window.echarts) { return; }
    var charts = figures();
    var drawn = [];
    charts.forEach(function (chart) {
      var element = document.getElementById(chart.id);
      if (!element) { return; }
      element.style.height = height(chart) + "px";
      var instance = window.echarts.init(element, null, { renderer: "canvas" });
      instance.setOption(option(chart, colors(element)));
      instance.on("click", function (params) {
        var link = linkOf(chart, params);
        if (link) { window.location.assign(link); }
      });
      element.classList.add("chart-drawn");
      drawn.push({ chart: chart, element: element, instance: instance });
    });
    if (!drawn.length) { return; }
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(function (entries) {
        entries.forEach(function (entry) {
          drawn.forEach(function (item) { if (item.element === entry.target) { item.instance.resize(); } });
        });
      });
      drawn.forEach(function (item) { observer.observe(item.element); });
    }
    // A theme switched on the page changes the colours the charts were drawn in.
    new MutationObserver(function () {
      drawn.forEach(function (item) { item.instance.setOption(option(item.chart, colors(item.element))); });
    }).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
