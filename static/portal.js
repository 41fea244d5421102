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

// <select data-autosubmit>: submit its form on change (no inline handlers: the
// Content-Security-Policy allows none).
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
});

// <button data-close-modal>: empty the modal host the dialog was loaded into.
document.addEventListener("click", (event) => {
  if (!event.target.closest("[data-close-modal]")) return;
  document.getElementById("modal-host").innerHTML = "";
});

// A live refresh of a table ([data-live-refresh]) never replaces a selection the
// user is making: while any row (or "all matching") is ticked, it skips its turn.
document.addEventListener("htmx:beforeRequest", (event) => {
  const poller = event.detail.elt;
  if (!poller.matches || !poller.matches("[data-live-refresh]")) return;
  const region = poller.closest(".table-region");
  if (region && region.querySelector(".row-select:checked, #all-matching:checked")) {
    event.preventDefault();
  }
});
