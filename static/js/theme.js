// Runs in <head>, before the page paints, so a chosen theme never flashes the other one.
(function () {
  var theme = "system";
  try { theme = localStorage.getItem("cims-theme") || "system"; } catch (e) {}
  document.documentElement.setAttribute("data-theme", theme);
})();
