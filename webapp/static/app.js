// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Exit this page: pressing Shift three times leaves at once, replacing this history entry.
  var exit = document.querySelector("[data-exit-url]");
  var exitUrl = exit && exit.getAttribute("data-exit-url");
  function leave(event) {
    if (event) { event.preventDefault(); }
    document.body.style.display = "none";
    window.location.replace(exitUrl);
  }
  if (exitUrl) {
    var link = document.getElementById("exit-this-page");
    if (link) { link.addEventListener("click", leave); }
    var presses = 0, timer = null;
    document.addEventListener("keyup", function (event) {
      if (event.key !== "Shift") { presses = 0; return; }
      presses += 1;
      clearTimeout(timer);
      timer = setTimeout(function () { presses = 0; }, 1000);
      if (presses >= 3) { leave(); }
    });
  }
  // Error summary takes focus so screen readers announce it.
  var summary = document.querySelector("[data-error-summary]");
  if (summary) { summary.focus(); }
  // Copy the code to the clipboard.
  var copy = document.querySelector("[data-copy-target]");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      var target = document.getElementById(copy.getAttribute("data-copy-target"));
      var status = document.querySelector("[data-copy-status]");
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        if (status) { status.textContent = status.getAttribute("data-copied"); }
      }, function () {
        if (status) { status.textContent = status.getAttribute("data-failed"); }
      });
    });
  }
  // Character count for long answers.
  document.querySelectorAll("textarea[data-maxlength]").forEach(function (area) {
    var max = parseInt(area.getAttribute("data-maxlength"), 10);
    var out = document.getElementById(area.id + "-count");
    if (!out) { return; }
    out.hidden = false;
    function update() {
      var left = max - area.value.length;
      var text = out.getAttribute(left >= 0 ? "data-remaining" : "data-over");
      out.textContent = text.replace("{n}", Math.abs(left).toLocaleString());
    }
    area.addEventListener("input", update);
    update();
  });
  // Prevent double submission: the server is idempotent anyway, this just saves a round trip.
  document.querySelectorAll("[data-prevent-double-click]").forEach(function (button) {
    var form = button.form;
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      if (event.submitter && event.submitter !== button) { return; }
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
    });
  });
})();
