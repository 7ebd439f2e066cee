// Passkeys (WebAuthn) for staff: the one place JavaScript is needed (docs/staff-sign-in.md).
// Each passkey form carries its options (or, on the login page, an address to fetch them from);
// this asks the browser for the passkey when the form is sent, puts the browser's answer in the
// form's "credential" field as JSON, and sends the form as usual.
(function () {
  "use strict";
  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var raw = atob(base64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i += 1) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }
  function toText(buffer) {
    if (!buffer) { return null; }
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i += 1) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }
  function createOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return { publicKey: options };
  }
  function getOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return { publicKey: options };
  }
  function answer(credential) {
    var response = credential.response, out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      out.response.userHandle = toText(response.userHandle);
    }
    return JSON.stringify(out);
  }
  function options(form) {
    var url = form.getAttribute("data-passkey-options-url");
    if (!url) { return Promise.resolve(JSON.parse(form.getAttribute("data-passkey-options"))); }
    var token = form.querySelector("input[name=form_token]");
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ form_token: token ? token.value : "" })
    }).then(function (reply) {
      if (!reply.ok) { throw new Error("options"); }
      return reply.json();
    });
  }
  var supported = window.PublicKeyCredential && navigator.credentials && window.fetch;
  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    if (!supported) {
      document.querySelectorAll("[data-passkey-unsupported]").forEach(function (note) {
        note.hidden = false;
      });
      return;
    }
    form.hidden = false;
    var status = form.querySelector("[data-passkey-status]");
    var button = form.querySelector("button[type=submit]");
    var busy = false;
    form.addEventListener("submit", function (event) {
      var field = form.querySelector("input[name=credential]");
      if (field.value) { return; }  // the answer is in: the form goes as usual
      event.preventDefault();
      if (busy) { return; }
      busy = true;
      button.disabled = true;
      status.textContent = "";
      var create = form.getAttribute("data-passkey") === "create";
      options(form).then(function (given) {
        return create ? navigator.credentials.create(createOptions(given))
                      : navigator.credentials.get(getOptions(given));
      }).then(function (credential) {
        field.value = answer(credential);
        form.submit();
      }).catch(function (error) {
        busy = false;
        button.disabled = false;
        var key = error && error.name === "NotAllowedError" ? "data-cancelled" : "data-failed";
        status.textContent = status.getAttribute(key);
      });
    });
  });
})();
