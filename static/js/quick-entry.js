// Quick entry that keeps working without a connection.
//
// Each entry gets a key made here (crypto.randomUUID()) and is written to this device's storage
// before it is sent; entries that cannot be sent wait there and go out when the connection
// returns (the "online" event, and a retry every half minute). The server stores an entry's key
// with it and answers a key it already has with the same success, so an entry sent twice (a
// response lost on the way back) is still stored once. Entries the server refuses wait under
// "Needs attention" until they are corrected or discarded: nothing typed in is dropped.
//
// Without this script the page is a plain form that posts and redirects.
(function () {
  "use strict";

  var root = document.querySelector("[data-quick-entry]");
  if (!root) { return; }
  var form = root.querySelector("[data-entry-form]");
  var statusLine = root.querySelector("[data-entry-status]");
  var queueBox = root.querySelector("[data-entry-queue]");
  var waitingLine = root.querySelector("[data-entry-waiting]");
  var attentionBox = root.querySelector("[data-entry-attention]");
  var attentionList = root.querySelector("[data-entry-attention-list]");
  var whereBox = root.querySelector("[data-entry-where]");
  var whereText = root.querySelector("[data-entry-where-text]");
  var text = root.dataset;

  // Entries are kept per user: another user signing in on this device never sends them.
  var QUEUE_KEY = "cims-quick-entry:" + text.user;
  var WHERE_KEY = "cims-quick-entry-where:" + text.user;
  var RETRY_MS = 30000;
  var WAITING = "waiting";
  var REJECTED = "rejected";
  var CHANNEL = "entry-channel";
  var EVENT = "entry-event";
  var KEY = "entry-client_key";
  var queueLimit = parseInt(text.queueLimit, 10) || 500;
  var channelLabels = JSON.parse(text.channelLabels || "{}");
  var sending = false;
  var signedOut = false;
  var storageWorks = true;
  var unsaved = {}; // entries kept in memory when this browser has no usable storage

  // "saved", "queued" or "problem": the stylesheet colours the line by it.
  function say(message, kind) {
    statusLine.textContent = message;
    statusLine.dataset.kind = kind || "";
  }

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (match, name) {
      return values[name] === undefined ? match : String(values[name]);
    });
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // Storage ------------------------------------------------------------------------------

  function load() {
    if (!storageWorks) { return Object.values(unsaved); }
    try {
      return JSON.parse(window.localStorage.getItem(QUEUE_KEY) || "[]");
    } catch (error) {
      return [];
    }
  }

  function store(entries) {
    if (storageWorks) {
      try {
        window.localStorage.setItem(QUEUE_KEY, JSON.stringify(entries));
        return true;
      } catch (error) {
        storageWorks = false;
        say(text.textNoStorage, "problem");
      }
    }
    unsaved = {};
    entries.forEach(function (entry) { unsaved[entry.key] = entry; });
    return false;
  }

  function update(key, change) {
    // Read again before every write: another tab, or this one while a request was out, may
    // have changed the queue.
    var entries = load().filter(function (entry) { return entry.key !== key; });
    var entry = change ? change() : null;
    if (entry) { entries.push(entry); }
    store(entries);
  }

  function waiting() {
    return load().filter(function (entry) { return entry.state === WAITING; });
  }

  // Where the entries are made: chosen once, remembered on this device --------------------

  function whereFields() {
    return { channel: form.elements[CHANNEL], event: form.elements[EVENT] };
  }

  function showWhere() {
    var fields = whereFields();
    var label = channelLabels[fields.channel.value] || fields.channel.value;
    whereText.textContent = fields.event.value ? label + " · " + fields.event.value : label;
  }

  function rememberWhere() {
    var fields = whereFields();
    try {
      window.localStorage.setItem(WHERE_KEY, JSON.stringify({ channel: fields.channel.value, event: fields.event.value }));
    } catch (error) { /* the choice is then kept for this page only */ }
    showWhere();
  }

  function restoreWhere() {
    // A link or a redirect that names the place wins over the remembered one.
    var params = new URLSearchParams(window.location.search);
    var fields = whereFields();
    var saved = null;
    if (!params.has(CHANNEL)) {
      try { saved = JSON.parse(window.localStorage.getItem(WHERE_KEY) || "null"); } catch (error) { saved = null; }
    }
    if (saved) {
      if (saved.channel && fields.channel.querySelector('option[value="' + CSS.escape(saved.channel) + '"]')) {
        fields.channel.value = saved.channel;
      }
      fields.event.value = saved.event || "";
    }
    rememberWhere();
    if (fields.event.value && !form.querySelector(".has-error")) { whereBox.open = false; }
  }

  // The form ----------------------------------------------------------------------------

  function entryFromForm(key) {
    var data = new FormData(form);
    data.delete("csrfmiddlewaretoken");
    data.set(KEY, key);
    var fields = [];
    data.forEach(function (value, name) {
      if (typeof value === "string") { fields.push([name, value]); }
    });
    return {
      key: key,
      fields: fields,
      name: text.nameField ? String(data.get(text.nameField) || "").trim() : "",
      state: WAITING,
      errors: [],
      at: Date.now(),
    };
  }

  function clearForm() {
    var fields = whereFields();
    var where = { channel: fields.channel.value, event: fields.event.value };
    form.reset();
    fields.channel.value = where.channel;
    fields.event.value = where.event;
    delete form.dataset.editingKey;
    form.querySelectorAll(".field-error").forEach(function (node) { node.remove(); });
    form.querySelectorAll(".has-error").forEach(function (node) { node.classList.remove("has-error"); });
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (node) { node.removeAttribute("aria-invalid"); });
    root.querySelectorAll(".alert-error").forEach(function (node) { node.remove(); });
    var first = form.querySelector("[autofocus]") || form.querySelector(".entry-fields input");
    if (first) { first.focus(); }
  }

  function fillForm(entry) {
    form.reset();
    var values = {};
    entry.fields.forEach(function (pair) { (values[pair[0]] = values[pair[0]] || []).push(pair[1]); });
    Array.prototype.forEach.call(form.elements, function (input) {
      if (!input.name || input.name === "csrfmiddlewaretoken" || !(input.name in values)) { return; }
      var given = values[input.name];
      if (input.type === "checkbox" || input.type === "radio") {
        input.checked = given.indexOf(input.value) !== -1;
      } else {
        input.value = given[0];
      }
    });
    form.dataset.editingKey = entry.key;
    showWhere();
    var first = form.querySelector("[autofocus]");
    if (first) { first.focus(); }
    form.scrollIntoView({ block: "start" });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var key = form.dataset.editingKey || newKey();
    if (!form.dataset.editingKey && waiting().length >= queueLimit) {
      say(text.textFull, "problem");
      return;
    }
    var entry = entryFromForm(key);
    update(key, function () { return entry; });
    rememberWhere();
    clearForm();
    if (navigator.onLine) { say(text.textSending, "queued"); } else { say(queuedText(), "queued"); }
    render();
    flush(key);
  });

  form.addEventListener("change", function (event) {
    if (event.target.name === CHANNEL || event.target.name === EVENT) { rememberWhere(); }
  });

  // Sending -----------------------------------------------------------------------------

  function cookie(name) {
    var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(name + "=") === 0; })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function csrfToken() {
    // The cookie, read when sending: a token rotated while the entry waited (signing in again)
    // is the current one there, whatever the page was given when it loaded.
    return cookie("csrftoken") || form.elements.csrfmiddlewaretoken.value;
  }

  function post(entry, token) {
    var body = new FormData();
    entry.fields.forEach(function (pair) { body.append(pair[0], pair[1]); });
    return fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      redirect: "manual",
      // The server refuses entries sent with the session of another user than this page's.
      headers: { "Accept": "application/json", "X-CSRFToken": token, "X-Entry-User": text.user },
    });
  }

  async function freshToken() {
    // Loading the page again sets a new CSRF cookie when the old one is gone, and carries a
    // token that goes with it.
    var response = await fetch(form.action, { credentials: "same-origin", redirect: "manual" });
    if (!response.ok) { return null; }
    var page = new DOMParser().parseFromString(await response.text(), "text/html");
    var input = page.querySelector('input[name="csrfmiddlewaretoken"]');
    if (!input) { return null; }
    form.elements.csrfmiddlewaretoken.value = input.value;
    return cookie("csrftoken") || input.value;
  }

  function isSignedOut(response) {
    // A session that ended answers with a redirect to the sign-in page; one that another user
    // started since on this device answers 409.
    return response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400) ||
      response.status === 409;
  }

  function forgetPage() {
    // The copy the service worker keeps shows this user's page: once they are signed out it
    // must not open for whoever uses the device next.
    if (!window.caches) { return; }
    window.caches.keys().then(function (names) {
      names.forEach(function (name) { if (name.indexOf("cims-quick-entry") === 0) { window.caches.delete(name); } });
    }).catch(function () {});
  }

  async function send(entry) {
    var response;
    try {
      response = await post(entry, csrfToken());
      if (response.status === 403) {
        var token = await freshToken();
        if (token) { response = await post(entry, token); }
      }
    } catch (error) {
      return "offline";
    }
    if (isSignedOut(response)) {
      signedOut = true;
      forgetPage();
      return "signed-out";
    }
    if (response.status === 200 || response.status === 201) {
      var answer = await response.json().catch(function () { return {}; });
      update(entry.key, null);
      return { saved: answer.name || entry.name };
    }
    if (response.status === 400 || response.status === 403) {
      var refusal = await response.json().catch(function () { return null; });
      var errors = refusal && refusal.errors ? refusal.errors : [{ field: "", label: "", messages: [String(response.status)] }];
      update(entry.key, function () {
        entry.state = REJECTED;
        entry.errors = errors;
        return entry;
      });
      return "rejected";
    }
    return "later"; // the server is having trouble: try again later
  }

  async function flush(currentKey) {
    if (sending) { return; }
    if (!navigator.onLine) {
      render();
      return;
    }
    sending = true;
    try {
      var entries = waiting();
      for (var i = 0; i < entries.length; i += 1) {
        var result = await send(entries[i]);
        if (result === "offline" || result === "signed-out" || result === "later") { break; }
        signedOut = false;
        if (entries[i].key === currentKey || entries.length === 1) {
          if (result === "rejected") { say(text.textRejected, "problem"); } else { say(savedText(result.saved), "saved"); }
        }
      }
    } finally {
      sending = false;
      render();
    }
  }

  function savedText(name) {
    return name ? format(text.textSaved, { name: name }) : text.textSavedPlain;
  }

  function queuedText() {
    return format(text.textQueued, { count: waiting().length });
  }

  // What is waiting, and what needs attention ---------------------------------------------

  function render() {
    var entries = load();
    var count = entries.filter(function (entry) { return entry.state === WAITING; }).length;
    queueBox.hidden = count === 0;
    waitingLine.textContent = "";
    if (count) {
      waitingLine.textContent = format(text.textWaiting, { count: count });
      if (signedOut) {
        waitingLine.append(" " + text.textSignedOut + " ");
        var link = document.createElement("a");
        link.href = text.login;
        link.textContent = text.textSignIn;
        waitingLine.append(link);
      }
      if (!sending && statusLine.dataset.kind === "queued") { say(queuedText(), "queued"); }
    }
    var rejected = entries.filter(function (entry) { return entry.state === REJECTED; });
    attentionBox.hidden = rejected.length === 0;
    attentionList.replaceChildren.apply(attentionList, rejected.map(attentionItem));
  }

  function attentionItem(entry) {
    var item = document.createElement("li");
    var title = document.createElement("strong");
    title.textContent = entry.name || text.textUnnamed;
    item.append(title);
    var problems = document.createElement("ul");
    entry.errors.forEach(function (error) {
      error.messages.forEach(function (message) {
        var line = document.createElement("li");
        line.textContent = error.label ? error.label + ": " + message : message;
        problems.append(line);
      });
    });
    item.append(problems);
    var actions = document.createElement("div");
    actions.className = "entry-attention-actions";
    var edit = document.createElement("button");
    edit.type = "button";
    edit.className = "button small";
    edit.textContent = text.textEdit;
    edit.addEventListener("click", function () { fillForm(entry); });
    var discard = document.createElement("button");
    discard.type = "button";
    discard.className = "button small danger";
    discard.textContent = text.textDiscard;
    discard.addEventListener("click", function () {
      if (window.confirm(text.textDiscardConfirm)) {
        update(entry.key, null);
        if (form.dataset.editingKey === entry.key) { delete form.dataset.editingKey; }
        render();
      }
    });
    actions.append(edit, discard);
    item.append(actions);
    return item;
  }

  root.querySelector("[data-entry-send-now]").addEventListener("click", function () { flush(); });
  window.addEventListener("online", function () { flush(); });
  window.addEventListener("offline", render);
  window.addEventListener("storage", function (event) { if (event.key === QUEUE_KEY) { render(); } });
  window.setInterval(function () { if (waiting().length) { flush(); } }, RETRY_MS);

  // A service worker keeps the page and its files, so that it opens again without a
  // connection. Without one (or where it is refused) the page still queues while it is open.
  if ("serviceWorker" in navigator && text.worker) {
    navigator.serviceWorker.register(text.worker).catch(function () {});
  }

  restoreWhere();
  render();
  flush();
})();
