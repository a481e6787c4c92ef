// The workspace socket on every page (#workspace-live in base.html): on every (re)connect,
// subscribe to the topics the page lists in data-topics ("inbox" everywhere; a page may
// add its own through {% block live_topics %}). The server pushes out-of-band fragments
// (e.g. <span id="inbox-count">) that the htmx ws extension swaps in by id.
//
// A push missed while the socket was closed (the page was rendering, the server restarted)
// is made up on every (re)connect: an element with data-live-refresh="<url>" is fetched
// again and swapped whole (the inbox count does this).
//
// This socket's open and message events stop here: page scripts that listen on document
// for their own sockets (the run timeline, the run list) never see them, and this script
// never sees theirs. No inline scripts (CSP).
(function () {
  "use strict";

  var socket = document.getElementById("workspace-live");
  if (!socket) return;

  function topics() {
    return (socket.dataset.topics || "").split(/\s+/).filter(Boolean);
  }

  function refresh() {
    if (!window.htmx) return;
    document.querySelectorAll("[data-live-refresh]").forEach(function (el) {
      if (!el.id) return;
      htmx.ajax("GET", el.dataset.liveRefresh, { target: "#" + el.id, swap: "outerHTML" });
    });
  }

  socket.addEventListener("htmx:wsOpen", function (event) {
    event.stopPropagation();
    event.detail.socketWrapper.send(JSON.stringify({ topics: topics() }));
    refresh(); // after subscribing: whatever changes from now on is pushed
  });

  socket.addEventListener("htmx:wsBeforeMessage", function (event) {
    event.stopPropagation(); // swapped by the extension itself, out of band by id
  });
})();
