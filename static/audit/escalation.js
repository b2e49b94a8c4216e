// The escalation decision, from the keyboard: 1–9 accept a label, o own value, e / a the reason,
// Ctrl+Enter resolve and open the next, n the next open escalation. Typing in a field is left alone.
(function () {
  "use strict";
  var form = document.getElementById("decision-form");
  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox"));
  }
  function syncOwn() {
    if (!form) return;
    var own = form.querySelector('input[name="choice"][value="own"]');
    var box = document.getElementById("own-value");
    if (box && own) box.disabled = !own.checked;
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey && event.key === "Enter" && form) {
      event.preventDefault();
      form.querySelector('button[value="next"]').click();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "n") {
      var next = document.getElementById("next-escalation");
      if (next) { event.preventDefault(); window.location.assign(next.href); }
      return;
    }
    if (!form) return;
    var radio = form.querySelector('input[type="radio"][data-key="' + event.key + '"]');
    if (radio) {
      event.preventDefault();
      radio.checked = true;
      radio.focus();
      syncOwn();
      if (radio.value === "own") {
        var input = document.querySelector("#own-value select, #own-value input, #own-value textarea");
        if (input) input.focus();
      }
    }
  });
  if (form) {
    form.addEventListener("change", syncOwn);
    syncOwn();
  }
})();
