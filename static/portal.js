// Copy buttons: <button data-copy="text">. Works without a framework.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  navigator.clipboard?.writeText(button.dataset.copy).then(() => {
    const label = button.textContent;
    button.textContent = "copied";
    setTimeout(() => { button.textContent = label; }, 1200);
  });
});

// Snapshot table: "select all on this page" and a live count of the selection.
function updateSelection(root) {
  const boxes = [...root.querySelectorAll(".row-select")];
  const all = root.querySelector("#all-matching");
  const count = root.querySelector("[data-selected-count]");
  if (!count) return;
  const n = all && all.checked ? all.nextElementSibling.textContent.match(/\d+/)[0] : boxes.filter((b) => b.checked).length;
  count.textContent = n ? `${n} selected` : "";
}
document.addEventListener("change", (event) => {
  const region = event.target.closest(".table-region");
  if (!region) return;
  if (event.target.matches("[data-select-page]")) {
    region.querySelectorAll(".row-select").forEach((box) => { box.checked = event.target.checked; });
  }
  if (event.target.matches("#all-matching") && event.target.checked) {
    region.querySelectorAll(".row-select, [data-select-page]").forEach((box) => { box.checked = true; });
  }
  updateSelection(region);
});

// Show 4xx answers to htmx requests (validation messages), not only 2xx.
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  if (status >= 400 && status < 500) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
