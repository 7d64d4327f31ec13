// Small enhancements; every page works without them.
(function () {
  "use strict";

  var THEMES = ["system", "light", "dark"];

  function setTheme(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    try { localStorage.setItem("cims-theme", theme); } catch (e) {}
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      var label = button.getAttribute("data-label-" + theme);
      button.setAttribute("title", label);
      button.setAttribute("aria-label", label);
    });
  }

  function submit(form) {
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  // Show only the inputs the chosen bulk action needs.
  function showBulkParams(select) {
    var form = select.form;
    form.querySelectorAll("[data-bulk-param]").forEach(function (box) {
      var wanted = box.getAttribute("data-bulk-param").split(" ").indexOf(select.value) !== -1;
      box.hidden = !wanted;
    });
  }

  function init(root) {
    root.querySelectorAll("[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        var table = box.closest("table");
        table.querySelectorAll('tbody input[type="checkbox"]').forEach(function (row) {
          row.checked = box.checked;
        });
      });
    });
    root.querySelectorAll('select[name="action"]').forEach(function (select) {
      if (select.form && select.form.querySelector("[data-bulk-param]")) {
        showBulkParams(select);
        select.addEventListener("change", function () { showBulkParams(select); });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setTheme(document.documentElement.getAttribute("data-theme") || "system");
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        var current = document.documentElement.getAttribute("data-theme") || "system";
        setTheme(THEMES[(THEMES.indexOf(current) + 1) % THEMES.length]);
      });
    });

    // Filters open by default on wide screens, folded on phones.
    if (window.matchMedia("(min-width: 821px)").matches) {
      document.querySelectorAll("details[data-open-wide]").forEach(function (d) { d.open = true; });
    }

    var timer;
    document.addEventListener("input", function (event) {
      if (event.target.matches("[data-live-search]") && event.target.form) {
        clearTimeout(timer);
        timer = setTimeout(function () { submit(event.target.form); }, 350);
      }
    });
    document.addEventListener("change", function (event) {
      if (event.target.matches("[data-autosubmit]") && event.target.form) { submit(event.target.form); }
    });
    init(document);
  });

  // Signing out first deletes the quick-entry page kept for offline use (static/js/entry-sw.js):
  // it shows this user's name and queue, and must not open for the next user of the device.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-sign-out]") || !window.caches) { return; }
    event.preventDefault();
    window.caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) { return name.indexOf("cims-quick-entry") === 0; })
        .map(function (name) { return window.caches.delete(name); }));
    }).catch(function () {}).then(function () { form.submit(); });
  });

  document.addEventListener("htmx:afterSwap", function (event) { init(event.detail.elt); });

  // A live search changes the address without a page load; forms that return here follow it.
  document.addEventListener("htmx:pushedIntoHistory", function () {
    document.querySelectorAll('input[name="next"]').forEach(function (input) {
      input.value = window.location.pathname + window.location.search;
    });
  });
})();
