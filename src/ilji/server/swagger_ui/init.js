// Starts Swagger UI on the document embedded in the page (a <script type="application/json">
// block: the page's content policy runs no inline script, and a browser fetching
// /openapi.json by itself would carry no token).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const spec = JSON.parse(document.getElementById("ilji-openapi").textContent);
  window.ui = SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
