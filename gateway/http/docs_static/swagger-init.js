// Starts Swagger UI on the gateway's OpenAPI document. In a file of its own (not inline) so
// the page's Content-Security-Policy can keep script-src to 'self'.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null,  // never send the document to swagger.io's validator
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    defaultModelsExpandDepth: 0,
  });
});
