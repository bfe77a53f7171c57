// The live queue: an EventSource on /console/queue/stream re-renders the table.
// Data only ever reaches the page through textContent and attribute setters (no innerHTML),
// so nothing a case carries can become markup. No message text is sent here at all.
(function () {
  "use strict";
  var table = document.getElementById("queue");
  if (!table || !window.EventSource) return;
  var body = document.getElementById("queue-rows");
  var empty = document.getElementById("queue-empty");
  var status = document.getElementById("live-status");
  var csrf = table.getAttribute("data-csrf") || "";

  function waitLabel(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var rest = minutes % 60;
    return Math.floor(minutes / 60) + " h " + (rest < 10 ? "0" : "") + rest + " min";
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    if (text !== undefined && text !== null) td.textContent = String(text);
    row.appendChild(td);
    return td;
  }

  function actionCell(row, item) {
    var td = cell(row, null, "actions");
    if (item.can_claim) {
      var form = document.createElement("form");
      form.method = "post";
      form.action = "/console/cases/" + encodeURIComponent(item.id) + "/claim";
      form.className = "inline";
      var token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrf_token";
      token.value = csrf;
      var button = document.createElement("button");
      button.type = "submit";
      button.className = "button";
      button.textContent = "Claim";
      form.appendChild(token);
      form.appendChild(button);
      td.appendChild(form);
    } else if (item.can_open) {
      var link = document.createElement("a");
      link.href = "/console/cases/" + encodeURIComponent(item.id);
      link.textContent = "Open";
      td.appendChild(link);
    }
  }

  function render(items) {
    var rows = document.createDocumentFragment();
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      tr.className = "prio-" + item.priority;
      tr.setAttribute("data-id", item.id);
      var code = document.createElement("code");
      code.textContent = item.code;
      cell(tr).appendChild(code);
      var prio = document.createElement("span");
      prio.className = "prio prio-" + item.priority;
      prio.textContent = item.priority;
      cell(tr).appendChild(prio);
      var waiting = cell(tr, waitLabel(item.waiting_seconds), "nowrap");
      waiting.setAttribute("data-created", item.created_at);
      cell(tr, item.language);
      cell(tr, item.reason);
      var flags = cell(tr);
      (item.risk_flags || []).forEach(function (flag) {
        var span = document.createElement("span");
        span.className = "flag";
        span.textContent = flag;
        flags.appendChild(span);
        flags.appendChild(document.createTextNode(" "));
      });
      cell(tr, item.status === "queued" ? "waiting" : "with " + (item.assignee || "an operator"));
      actionCell(tr, item);
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
    empty.hidden = items.length > 0;
  }

  function tick() {
    var now = Date.now();
    body.querySelectorAll("[data-created]").forEach(function (td) {
      var created = Date.parse(td.getAttribute("data-created"));
      if (!isNaN(created)) td.textContent = waitLabel((now - created) / 1000);
    });
  }

  var source = new EventSource(table.getAttribute("data-stream"));
  source.addEventListener("queue", function (event) {
    render(JSON.parse(event.data));
    status.textContent = "Updates live.";
  });
  source.onerror = function () {
    status.textContent = "Reconnecting…";
  };
  window.setInterval(tick, 5000);
})();
