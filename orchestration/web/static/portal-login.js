// The portal's sign-in link carries the token in the URL fragment (/portal/login#token=mlp_...),
// which a browser never sends to a server: this posts it through the sign-in form, after taking
// it out of the address bar and the history. No inline script: the pages' CSP forbids them.
(function () {
  "use strict";
  function signIn() {
    var match = /^#token=([A-Za-z0-9_\-]{1,512})$/.exec(window.location.hash || "");
    if (!match) { return; }
    history.replaceState(null, "", window.location.pathname);
    var form = document.getElementById("sign-in");
    var input = document.getElementById("token");
    if (!form || !input) { return; }
    input.value = match[1];
    form.submit();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", signIn);
  } else {
    signIn();
  }
})();
