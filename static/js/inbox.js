// The inbox and a gate's page: a refused or late decision (400, 403, 409) comes back as
// the gate's fragment with the reason; swap it in like a success so the approver sees
// who decided first, or what to fix. When the count of gates waiting rises on the
// "waiting" list, offer to show them. No inline scripts (CSP).
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!form || !form.closest || !form.closest(".gate")) return;
    var status = event.detail.xhr.status;
    if (status === 400 || status === 403 || status === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  function offerNew() {
    var list = document.getElementById("inbox-results");
    var count = document.getElementById("inbox-count");
    var notice = document.getElementById("inbox-new");
    if (!list || !count || !notice || list.dataset.status !== "waiting") return;
    var shown = list.querySelectorAll('.gate[data-status="waiting"]').length;
    notice.hidden = parseInt(count.dataset.count || "0", 10) <= shown;
  }

  // The count changes by a push (wsAfterMessage) or a refresh on reconnect (afterSettle).
  document.addEventListener("htmx:wsAfterMessage", offerNew);
  document.addEventListener("htmx:afterSettle", offerNew);
})();
