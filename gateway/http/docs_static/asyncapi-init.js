// Starts the AsyncAPI viewer on the gateway's AsyncAPI document. In a file of its own (not
// inline) so the page's Content-Security-Policy can keep script-src to 'self'.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("asyncapi");
  AsyncApiStandalone.render({
    schema: { url: root.getAttribute("data-spec"), requestOptions: { credentials: "omit" } },
    config: { show: { sidebar: true, errors: true } },
  }, root);
});
