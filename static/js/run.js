// The run page's live timeline: tell the server the last event we show whenever the
// websocket (re)connects, so it sends exactly the events after it; count down retries.
(function () {
  "use strict";

  function lastSeq() {
    var rows = document.querySelectorAll("#timeline [data-seq]");
    return rows.length ? parseInt(rows[rows.length - 1].dataset.seq, 10) : 0;
  }

  document.addEventListener("htmx:wsOpen", function (event) {
    event.detail.socketWrapper.send(JSON.stringify({ after: lastSeq() }));
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var live = document.getElementById("live");
    if (live) live.dataset.lastSeq = String(lastSeq());
  });

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.until) - now) / 1000);
      el.textContent = left > 0 ? "(in " + left + " s)" : "";
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
})();
