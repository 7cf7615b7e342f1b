// The API page (/docs): Swagger UI on the app's own OpenAPI document. Loaded as a file: the page's
// Content-Security-Policy allows no inline script. Nothing here talks to anything but this app.
"use strict";

(function () {
  var root = document.getElementById("swagger-ui");
  var dark = window.matchMedia("(prefers-color-scheme: dark)");
  function followScheme() {
    document.documentElement.classList.toggle("dark-mode", dark.matches);
  }
  followScheme();
  dark.addEventListener("change", followScheme);

  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapi,
    domNode: root,
    deepLinking: true,
    // The default sends the document to validator.swagger.io to draw a badge: a request outside the app.
    validatorUrl: null,
    // A token given to "Authorize" stays in this tab's memory: never in localStorage.
    persistAuthorization: false,
    displayOperationId: true,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    filter: true,
    showExtensions: false,
    tryItOutEnabled: false,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
