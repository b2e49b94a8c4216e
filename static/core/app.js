// Stepwise page behaviour. No inline scripts anywhere (strict CSP): everything lives here.
(function () {
  "use strict";

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  // Trajectory view: j / k move between steps, "/" focuses the search box on list pages.
  function steps() { return Array.prototype.slice.call(document.querySelectorAll("article.step")); }

  function currentIndex(list) {
    var marked = list.findIndex(function (el) { return el.classList.contains("current"); });
    if (marked >= 0) return marked;
    var top = 60;
    for (var i = 0; i < list.length; i++) { if (list[i].getBoundingClientRect().bottom > top) return i; }
    return 0;
  }

  function focusStep(list, i) {
    if (i < 0 || i >= list.length) return;
    list.forEach(function (el) { el.classList.remove("current"); });
    list[i].classList.add("current");
    list[i].scrollIntoView({ block: "start" });
    document.querySelectorAll(".outline a").forEach(function (a) {
      a.classList.toggle("current", a.getAttribute("href") === "#" + list[i].id);
    });
  }

  // An invalid form comes back as the form partial with status 422: swap it in (htmx leaves 4xx
  // responses unswapped by default), so the error shows beside the field and the input is kept.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Upload forms: show how much of the file has been sent (htmx reports XHR upload progress).
  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target.closest ? event.target.closest("form[data-upload-progress]") : null;
    if (!form || !event.detail.lengthComputable) return;
    var bar = document.getElementById(form.dataset.uploadProgress);
    if (!bar) return;
    bar.hidden = false;
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var list = steps();
    if (event.key === "j" && list.length) { focusStep(list, currentIndex(list) + 1); event.preventDefault(); }
    else if (event.key === "k" && list.length) { focusStep(list, currentIndex(list) - 1); event.preventDefault(); }
    else if (event.key === "/") {
      var search = document.querySelector("input[type=search]");
      if (search) { search.focus(); event.preventDefault(); }
    }
  });
})();
