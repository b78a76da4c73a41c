// Enhancements only: every page works without this file.
(function () {
  "use strict";
  // Say at once when a chosen file is too large or of the wrong type (the server checks again).
  document.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
    input.addEventListener("change", function () {
      var max = parseInt(input.getAttribute("data-max-bytes"), 10);
      var bad = Array.prototype.some.call(input.files, function (f) { return f.size > max; });
      input.setCustomValidity(bad ? (document.documentElement.lang === "en"
        ? "The file is larger than " + Math.floor(max / 1048576) + " MB."
        : "Tệp lớn hơn " + Math.floor(max / 1048576) + " MB.") : "");
      if (bad) { input.reportValidity(); }
    });
  });
  // A submit button can be pressed once; the filing also carries one Idempotency-Key per draft.
  document.querySelectorAll("form.submit-once").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        window.setTimeout(function () { b.disabled = true; }, 0);
      });
    });
  });
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
  document.querySelectorAll(".print-button").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });
})();
