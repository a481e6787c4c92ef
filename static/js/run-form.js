// The run form: a hint under a field as soon as what was typed breaks the field's limits
// (a number below its minimum, an address that is not one), from the same min, max, type
// and pattern attributes the server checks again on submit. The server's word is final.
(function () {
  var form = document.querySelector(".run-form");
  if (!form) return;

  function hintFor(control) {
    var field = control.closest(".field");
    if (!field) return null;
    var hint = field.querySelector("[data-live-hint]");
    if (!hint) {
      hint = document.createElement("p");
      hint.className = "field-error";
      hint.setAttribute("data-live-hint", "");
      hint.id = control.id + "_live";
      hint.hidden = true;
      control.insertAdjacentElement("afterend", hint);
    }
    return hint;
  }

  function check(control) {
    if (!control.willValidate || control.value === "") return clear(control);
    var hint = hintFor(control);
    if (!hint) return;
    if (control.checkValidity()) return clear(control);
    // The server's own message is already under the field: say nothing twice.
    var shown = control.closest(".field").querySelector(".field-error:not([data-live-hint])");
    if (shown) return;
    hint.textContent = control.validationMessage;
    hint.hidden = false;
    control.setAttribute("aria-describedby", hint.id);
  }

  function clear(control) {
    var field = control.closest(".field");
    var hint = field && field.querySelector("[data-live-hint]");
    if (hint) { hint.hidden = true; hint.textContent = ""; }
  }

  form.addEventListener("input", function (event) {
    var control = event.target;
    var server = control.closest(".field") && control.closest(".field").querySelector(".field-error:not([data-live-hint])");
    if (server) { server.remove(); control.closest(".field").classList.remove("has-error"); }
    check(control);
  });
  form.addEventListener("focusout", function (event) { check(event.target); });
})();
