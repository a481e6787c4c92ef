// The run page's live timeline: tell the server the last event we have whenever the
// websocket (re)connects, so it sends exactly the events after it; count down retries and
// timers; keep the time-travel scrubber in step with the log. No inline scripts (CSP).
(function () {
  "use strict";

  // The page shows the first events, a "load more" row, then the live tail: the last seq
  // we have is the larger of the log position the page was rendered at and the last row.
  function lastSeq() {
    var live = document.getElementById("live");
    var known = live ? parseInt(live.dataset.lastSeq || "0", 10) : 0;
    var rows = document.querySelectorAll("#timeline [data-seq]");
    var last = rows.length ? parseInt(rows[rows.length - 1].dataset.seq, 10) : 0;
    return Math.max(known, last);
  }

  document.addEventListener("htmx:wsOpen", function (event) {
    if (!document.getElementById("live")) return;
    event.detail.socketWrapper.send(JSON.stringify({ after: lastSeq() }));
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var live = document.getElementById("live");
    if (!live) return;
    var seq = lastSeq();
    live.dataset.lastSeq = String(seq);
    var range = document.getElementById("as-of-seq");
    if (range) {
      var atEnd = range.value === range.max;
      range.max = String(seq);
      if (atEnd) {
        range.value = String(seq);
        showSeq();
      }
    }
    tick();
  });

  function showSeq() {
    var range = document.getElementById("as-of-seq");
    var label = document.getElementById("as-of-label");
    if (range && label) label.textContent = range.value;
  }
  document.addEventListener("input", function (event) {
    if (event.target.id === "as-of-seq") showSeq();
  });

  function left(seconds) {
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  // A countdown counts only while what it waits for is still ahead: not once the run has
  // ended, nor once its step stopped waiting (a gate decided, a retry started), as the
  // step list (updated live) says.
  var COUNTING = { waiting: true, retry_scheduled: true };
  function stillAhead(el) {
    if (document.querySelector("#run-status[data-finished]")) return false;
    if (!el.dataset.step) return true;
    var row = document.getElementById("step-" + el.dataset.step);
    return !row || COUNTING[row.dataset.status] === true;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var seconds = stillAhead(el) ? Math.round((Date.parse(el.dataset.until) - now) / 1000) : 0;
      el.textContent = seconds > 0 ? "(in " + left(seconds) + ")" : "";
    });
  }

  // Copy buttons: data-copy names the element whose text is copied.
  function copied(button, text) {
    button.textContent = text;
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var text = source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button, "Copied"); },
        function () { copied(button, "Copy failed"); }
      );
      return;
    }
    // Plain http on another host: select the text so Ctrl+C copies it.
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    copied(button, document.execCommand && document.execCommand("copy") ? "Copied" : "Press Ctrl+C");
  });
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
})();
