// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Exit this page: pressing Shift three times leaves at once, replacing this history entry.
  var exit = document.querySelector("[data-exit-url]");
  var exitUrl = exit && exit.getAttribute("data-exit-url");
  function leave(event) {
    if (event) { event.preventDefault(); }
    document.body.style.display = "none";
    // Delete the draft and its cookie on the way out (the link without JavaScript goes
    // through /exit itself); never wait for it.
    try {
      fetch("/exit", { credentials: "same-origin", keepalive: true, redirect: "manual" });
    } catch (ignored) { /* leaving matters more */ }
    window.location.replace(exitUrl);
  }
  if (exitUrl) {
    // The Shift shortcut works only with this script, so only now is it mentioned.
    document.querySelectorAll("[data-exit-hint]").forEach(function (hint) { hint.hidden = false; });
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
  // Print the code (the print stylesheet keeps only it and the login address).
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
  // "Type the last 4 characters": checked here, so the code is never sent again. Without
  // JavaScript the form asks the server, which compares with the browser's own draft.
  var check = document.querySelector("[data-last4]");
  var shown = document.getElementById("code");
  if (check && shown) {
    check.hidden = false;
    check.addEventListener("submit", function (event) {
      event.preventDefault();
      var out = document.getElementById("last4-result");
      // Read as the server reads codes: NFKC, no spaces or hyphens, upper case, O=0, I=L=1.
      var typed = check.elements.last4.value.normalize("NFKC").replace(/[\s\u2010-\u2014\u2212-]/g, "")
        .toUpperCase().replace(/O/g, "0").replace(/[IL]/g, "1");
      var end = shown.textContent.replace(/[^0-9A-Z]/g, "").slice(-4);
      var kind = !typed ? "empty" : typed === end ? "match" : "mismatch";
      // Cleared first, so that the same answer twice is announced twice.
      out.textContent = "";
      setTimeout(function () { out.textContent = out.getAttribute("data-" + kind); }, 50);
    });
  }
  // Character count for long answers: in the catalogue's plural forms, styled as an error
  // when over, and told to screen readers politely once typing pauses (not every keystroke).
  var ANNOUNCE_AFTER_MS = 1000;
  var plurals = window.Intl && Intl.PluralRules
    ? new Intl.PluralRules(document.documentElement.lang || "en") : null;
  document.querySelectorAll("textarea[data-maxlength]").forEach(function (area) {
    var max = parseInt(area.getAttribute("data-maxlength"), 10);
    var out = document.getElementById(area.id + "-count");
    var status = document.getElementById(area.id + "-count-status");
    if (!out) { return; }
    out.hidden = false;
    var timer = null;
    function words() {
      // Characters as the server counts them (code points; a newline is one), not UTF-16 units.
      var left = max - Array.from(area.value.replace(/\r\n?/g, "\n")).length;
      var n = Math.abs(left), kind = left >= 0 ? "remaining" : "over";
      var form = plurals ? plurals.select(n) : (n === 1 ? "one" : "other");
      var text = out.getAttribute("data-" + kind + "-" + form) ||
        out.getAttribute("data-" + kind + "-other");
      return { text: text.replace("{n}", n.toLocaleString()), over: left < 0 };
    }
    function update(announce) {
      var now = words();
      out.textContent = now.text;
      out.classList.toggle("character-count--error", now.over);
      area.classList.toggle("textarea--error", now.over);
      if (!status || !announce) { return; }
      clearTimeout(timer);
      timer = setTimeout(function () { status.textContent = words().text; }, ANNOUNCE_AFTER_MS);
    }
    area.addEventListener("input", function () { update(true); });
    update(false);
  });
  // Files: each chosen file's progress while the form is sent (the same request the form makes
  // without JavaScript, to the same address, so the server's answer is the same page). Without
  // this script the form simply posts.
  document.querySelectorAll("[data-file-control]").forEach(function (control) {
    var input = control.querySelector("input[type=file]");
    var list = control.querySelector("[data-file-progress]");
    var status = control.querySelector("[data-file-progress-status]");
    var form = input && input.form;
    if (!form || !list || !window.FormData || !window.XMLHttpRequest) { return; }
    form.addEventListener("submit", function (event) {
      if (event.defaultPrevented || !input.files.length || form.dataset.sending) { return; }
      event.preventDefault();
      form.dataset.sending = "1";
      var files = Array.prototype.slice.call(input.files);
      list.textContent = "";
      var bars = files.map(function (file) {
        var item = document.createElement("li");
        var label = document.createElement("span");
        label.textContent = file.name + " ";
        var bar = document.createElement("progress");
        bar.max = Math.max(file.size, 1);
        bar.value = 0;
        bar.setAttribute("aria-label", file.name);
        item.appendChild(label);
        item.appendChild(bar);
        list.appendChild(item);
        return bar;
      });
      list.hidden = false;
      var total = files.reduce(function (sum, f) { return sum + f.size; }, 0);
      var body = new FormData(form, event.submitter || undefined);
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (progress) {
        // The files go in order, after the form's other fields: share what was sent out.
        var sent = Math.max(0, progress.loaded - (progress.total - total));
        var done = 0;
        files.forEach(function (file, i) {
          bars[i].value = Math.min(file.size, Math.max(0, sent - done));
          done += file.size;
        });
        if (status && progress.total) {
          status.textContent = Math.floor(100 * progress.loaded / progress.total) + "%";
        }
      });
      request.addEventListener("load", function () {
        var answered = request.responseURL || form.action;
        if (answered.split("#")[0] !== form.action.split("#")[0]) {
          window.location.assign(answered);  // redirected: the next page, as without JavaScript
          return;
        }
        document.open();  // the same page drawn again (its errors, or the files just added)
        document.write(request.responseText);
        document.close();
      });
      request.addEventListener("error", function () {
        delete form.dataset.sending;
        form.submit();  // let the browser send it the plain way
      });
      request.send(body);
    });
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
