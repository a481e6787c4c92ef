// Small progressive enhancements for the app shell. No inline scripts anywhere (CSP).
(function () {
  "use strict";

  function closeMenus(except) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (menu !== except) menu.removeAttribute("open");
    });
  }

  // A click outside an open menu closes it; opening one closes the others.
  document.addEventListener("click", function (event) {
    var menu = event.target.closest("details[data-menu]");
    closeMenus(menu);
  });

  // The workspace nav behind a menu button on narrow screens (responsive.css hides the
  // button on wider ones). The button says whether the nav is open; a click elsewhere or
  // Escape closes it.
  function setNavOpen(open) {
    var toggle = document.getElementById("nav-toggle");
    if (!toggle) return;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.closest(".topbar").classList.toggle("nav-open", open);
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("#nav-toggle");
    if (toggle) {
      setNavOpen(toggle.getAttribute("aria-expanded") !== "true");
    } else if (!event.target.closest("#workspace-nav")) {
      setNavOpen(false);
    }
  });

  // A Copy button (data-copy="<selector of a field>") puts the field's value on the
  // clipboard and says so in the status line it is described by.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("aria-describedby"));
    if (!field) return;
    function say(text) {
      if (status) status.textContent = text;
    }
    function fallback() {
      field.select();
      var copied = false;
      try {
        copied = document.execCommand("copy");
      } catch (error) {
        copied = false;
      }
      say(copied ? "Copied to the clipboard." : "Select the text and copy it (Ctrl+C or ⌘C).");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () {
        say("Copied to the clipboard.");
      }, fallback);
    } else {
      fallback();
    }
  });

  // Escape closes menus and returns focus to the menu's button.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var toggle = document.getElementById("nav-toggle");
    if (toggle && toggle.getAttribute("aria-expanded") === "true") {
      setNavOpen(false);
      toggle.focus();
      return;
    }
    var open = document.querySelector("details[data-menu][open]");
    if (open) {
      open.removeAttribute("open");
      open.querySelector("summary").focus();
    }
  });
})();
