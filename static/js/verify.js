// The verification page: count down to when a new code may be asked for, then enable the button.
// Without this script the button stays disabled until the page is reloaded.
(function () {
  "use strict";

  function countDown(button) {
    var left = parseInt(button.getAttribute("data-countdown"), 10) || 0;
    var wait = button.getAttribute("data-wait-label");
    var ready = button.getAttribute("data-ready-label");
    function tick() {
      if (left <= 0) {
        button.disabled = false;
        button.textContent = ready;
        return;
      }
      button.disabled = true;
      button.textContent = wait.replace("%s", String(left));
      left -= 1;
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-countdown]").forEach(countDown);
  });
})();
