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

  // Escape closes menus and returns focus to the menu's button.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("details[data-menu][open]");
    if (open) {
      open.removeAttribute("open");
      open.querySelector("summary").focus();
    }
  });
})();
