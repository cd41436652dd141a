// Progressive enhancement only: refresh the page's live regions (a request being provisioned,
// a run in progress) in place while they are live. Without JavaScript every page still works
// and offers a refresh link; every form posts without it.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  if (!window.fetch || !window.DOMParser) {
    return;
  }
  function liveRegions() {
    return document.querySelectorAll("section[data-live][id]");
  }
  function refresh() {
    if (!liveRegions().length) {
      return;
    }
    // The refresh header: this request is the script's, so it does not keep the session alive.
    var headers = { "Accept": "text/html", "X-Portal-Refresh": "1" };
    fetch(window.location.href, { credentials: "same-origin", headers: headers })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        liveRegions().forEach(function (region) {
          var replacement = fresh.getElementById(region.id);
          if (replacement) {
            region.replaceWith(document.importNode(replacement, true));
          }
        });
        window.setTimeout(refresh, INTERVAL_MS);
      })
      .catch(function () {
        window.setTimeout(refresh, INTERVAL_MS * 5);
      });
  }
  window.setTimeout(refresh, INTERVAL_MS);
})();
