// The live case page: new transcript lines, delivery changes, the case's state, erasure.
// Everything from the stream is written with textContent (a message "<script>" shows as text).
// Also: canned replies are inserted into the reply box.
(function () {
  "use strict";
  var root = document.getElementById("case");
  if (!root) return;
  var list = document.getElementById("transcript");
  var empty = document.getElementById("transcript-empty");
  var status = document.getElementById("live-status");
  var gone = document.getElementById("case-gone");

  // --- canned replies ---
  var canned = document.getElementById("canned");
  if (canned) {
    canned.addEventListener("change", function () {
      var target = document.getElementById(canned.getAttribute("data-target"));
      if (!target || !canned.value) return;
      var start = target.selectionStart || 0;
      var end = target.selectionEnd || 0;
      var before = target.value.slice(0, start);
      var after = target.value.slice(end);
      target.value = before + canned.value + after;
      target.focus();
      var caret = before.length + canned.value.length;
      target.setSelectionRange(caret, caret);
      canned.value = "";
    });
  }

  if (!window.EventSource) return;

  function deliveryBadge(line) {
    var span = document.createElement("span");
    span.className = "delivery delivery-" + line.delivery;
    span.textContent = line.delivery_label;
    return span;
  }

  function addLine(line) {
    if (list.querySelector('li[data-id="' + Number(line.id) + '"]')) return;
    var li = document.createElement("li");
    li.className = "line line-" + line.author;
    li.setAttribute("data-id", line.id);
    var head = document.createElement("div");
    head.className = "line-head";
    var who = document.createElement("span");
    who.className = "line-who";
    who.textContent = line.label;
    var time = document.createElement("time");
    time.textContent = line.time;
    head.appendChild(who);
    head.appendChild(document.createTextNode(" "));
    head.appendChild(time);
    if (line.delivery) head.appendChild(deliveryBadge(line));
    var text = document.createElement("div");
    text.className = "line-text";
    text.textContent = line.text;
    li.appendChild(head);
    li.appendChild(text);
    list.appendChild(li);
    empty.hidden = true;
  }

  function setDelivery(line) {
    var li = list.querySelector('li[data-id="' + Number(line.id) + '"]');
    if (!li) return addLine(line);
    var head = li.querySelector(".line-head");
    var old = head.querySelector(".delivery");
    if (old) old.remove();
    if (line.delivery) head.appendChild(deliveryBadge(line));
  }

  function setFact(name, value) {
    var dd = root.querySelector('[data-fact="' + name + '"]');
    if (dd) dd.textContent = value;
  }

  function setCase(c) {
    setFact("status", c.status);
    setFact("assignee", c.assignee || "—");
    setFact("legal_hold", c.legal_hold ? "on" : "off");
    setFact("claimed", c.claimed || "—");
    setFact("risk_flags", (c.risk_flags || []).join(", ") || "—");
  }

  function end(message) {
    gone.textContent = message;
    gone.hidden = false;
    root.querySelectorAll("form").forEach(function (form) {
      form.querySelectorAll("button, textarea, select").forEach(function (el) {
        el.disabled = true;
      });
    });
    status.textContent = "";
    source.close();
  }

  var source = new EventSource(root.getAttribute("data-stream"));
  source.addEventListener("line", function (e) { addLine(JSON.parse(e.data)); });
  source.addEventListener("delivery", function (e) { setDelivery(JSON.parse(e.data)); });
  source.addEventListener("case", function (e) {
    setCase(JSON.parse(e.data));
    status.textContent = "Updates live.";
  });
  source.addEventListener("erased", function (e) {
    list.replaceChildren();
    end(JSON.parse(e.data).message);
  });
  source.addEventListener("revoked", function (e) { end(JSON.parse(e.data).message); });
  source.onerror = function () {
    if (source.readyState !== EventSource.CLOSED) status.textContent = "Reconnecting…";
  };
})();
