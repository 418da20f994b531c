// Filters apply as soon as a choice changes; without JavaScript the Apply button does the same.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("form.filters select[data-autosubmit]")) {
    select.addEventListener("change", () => {
      const form = select.form;
      if (select.name === "criterion") {
        const dataset = form.querySelector("select[name=dataset]");
        if (dataset) dataset.value = "";
      }
      for (const field of form.querySelectorAll("input, select")) {
        if (field.name && !field.value) field.disabled = true; // keep the URL short
      }
      form.submit();
    });
  }
  const form = document.getElementById("filters");
  if (form) {
    form.addEventListener("submit", () => {
      for (const field of form.querySelectorAll("input, select")) {
        if (field.name && !field.value) field.disabled = true;
      }
    });
  }
});
