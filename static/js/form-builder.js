// The question editor shows its options box only for the types of question that have options.
// Without JavaScript the box is always there, and its help text says when it applies.
(function () {
  "use strict";

  var TYPES_WITH_OPTIONS = ["choice", "multi_choice"];

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("[data-field-form]");
    var type = form && form.querySelector('select[name="type"]');
    var box = form && form.querySelector("[data-choices-box]");
    if (!type || !box) { return; }
    var options = box.querySelector("textarea");

    function update() {
      var wanted = TYPES_WITH_OPTIONS.indexOf(type.value) !== -1;
      // Options already typed in, or refused by the server, stay in sight whatever the type.
      var filled = options && options.value.trim() !== "";
      box.hidden = !wanted && !filled && !box.querySelector(".field-error");
    }

    type.addEventListener("change", update);
    update();
  });
})();
