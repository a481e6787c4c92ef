// The run list: rows update live over the workspace socket ("runs" topic), bulk selection.
// No inline scripts anywhere (CSP).
(function () {
  "use strict";

  var opened = false;

  function live() {
    return document.getElementById("run-list-live");
  }

  // Subscribe on every (re)connect; after a reconnect, reload the rows we may have missed.
  document.addEventListener("htmx:wsOpen", function (event) {
    if (!live()) return;
    event.detail.socketWrapper.send(JSON.stringify({ topics: ["runs"] }));
    if (opened && window.htmx) {
      var selected = checkedIds();
      htmx
        .ajax("GET", window.location.href, { target: "#run-results", swap: "outerHTML" })
        .then(function () {
          restoreChecked(selected);
        });
    }
    opened = true;
  });

  // A pushed row replaces the row with its id; a run not on the page shows a notice
  // instead (the server cannot know this page's filters and sort).
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (!live()) return;
    event.preventDefault();
    var template = document.createElement("template");
    template.innerHTML = event.detail.message;
    Array.prototype.forEach.call(template.content.children, function (incoming) {
      var current = incoming.id ? document.getElementById(incoming.id) : null;
      if (!current) {
        if (incoming.classList.contains("run-row")) {
          var notice = document.getElementById("new-runs");
          if (notice) notice.hidden = false;
        }
        return;
      }
      var fresh = incoming.cloneNode(true);
      fresh.removeAttribute("hx-swap-oob");
      var box = current.querySelector("input[type=checkbox]");
      var freshBox = fresh.querySelector("input[type=checkbox]");
      if (box && freshBox) freshBox.checked = box.checked;
      current.replaceWith(fresh);
      if (window.htmx) htmx.process(fresh);
    });
  });

  function boxes() {
    return document.querySelectorAll("#run-rows input[name=run]");
  }

  function checkedIds() {
    var ids = [];
    boxes().forEach(function (box) {
      if (box.checked) ids.push(box.value);
    });
    return ids;
  }

  function restoreChecked(ids) {
    boxes().forEach(function (box) {
      box.checked = ids.indexOf(box.value) >= 0;
    });
    countSelected();
  }

  function countSelected() {
    var count = document.getElementById("selected-count");
    if (!count) return;
    var n = 0;
    boxes().forEach(function (box) {
      if (box.checked) n += 1;
    });
    count.textContent = String(n);
    // The bulk buttons act on the selection: with nothing selected they do nothing.
    document.querySelectorAll("#bulk button[name=action]").forEach(function (button) {
      button.disabled = n === 0;
    });
  }

  // Cancelling runs cannot be undone: ask first (before htmx sends the form).
  document.addEventListener(
    "submit",
    function (event) {
      if (!event.target.matches("#bulk")) return;
      var button = event.submitter;
      if (!button || button.value !== "cancel") return;
      var n = checkedIds().length;
      var question =
        "Cancel " + n + " run" + (n === 1 ? "" : "s") + "? Steps still running lose their results.";
      if (!window.confirm(question)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "select-all") {
      boxes().forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (target.id === "select-all" || target.name === "run") countSelected();
  });

  document.addEventListener("htmx:afterSwap", countSelected);
  countSelected();
})();
