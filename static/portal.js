// Copy buttons: <button data-copy="text">. Works without a framework.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  navigator.clipboard?.writeText(button.dataset.copy).then(() => {
    const label = button.textContent;
    button.textContent = document.body.dataset.textCopied || "copied";
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
  // The words come translated from the page (base.html): "{count} selected".
  count.textContent = n ? (document.body.dataset.textSelected || "{count} selected").replace("{count}", n) : "";
}
// The ids the user ticked, kept across live refreshes of single rows.
const ticked = new Set();
document.addEventListener("change", (event) => {
  const region = event.target.closest(".table-region");
  if (!region) return;
  if (event.target.matches("[data-select-page]")) {
    region.querySelectorAll(".row-select").forEach((box) => { box.checked = event.target.checked; });
  }
  if (event.target.matches("#all-matching") && event.target.checked) {
    region.querySelectorAll(".row-select, [data-select-page]").forEach((box) => { box.checked = true; });
  }
  region.querySelectorAll(".row-select").forEach((box) => {
    if (box.checked) ticked.add(box.value); else ticked.delete(box.value);
  });
  updateSelection(region);
});
// A row that refreshed itself comes back with its tick.
document.addEventListener("htmx:afterSettle", (event) => {
  const root = event.detail.elt;
  if (!root || !root.querySelectorAll) return;
  root.querySelectorAll(".row-select").forEach((box) => {
    if (ticked.has(box.value)) box.checked = true;
  });
});

// Show 4xx answers to htmx requests (validation messages), not only 2xx.
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  if (status >= 400 && status < 500) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// Forms that start a job ([data-submit-once]) submit once: a double click sends one
// request (the server also answers a repeat with the first job).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("[data-submit-once]")) return;
  if (form.dataset.submitted) {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "1";
  setTimeout(() => form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; }));
});

// <select data-autosubmit>: submit its form on change (no inline handlers: the
// Content-Security-Policy allows none).
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
});

// Dialogs loaded into #modal-host by a [data-opens-dialog] link open through
// Bootstrap's modal API: focus moves into the dialog and stays there, Escape
// closes it, and focus returns to the link that opened it.
let dialogOpener = null;
document.addEventListener("htmx:beforeRequest", (event) => {
  if (event.detail.elt.matches && event.detail.elt.matches("[data-opens-dialog]")) {
    dialogOpener = event.detail.elt;
  }
});
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id !== "modal-host") return;
  const element = event.detail.target.querySelector(".modal");
  if (!element || !window.bootstrap) return;
  const dialog = bootstrap.Modal.getOrCreateInstance(element);
  element.addEventListener("shown.bs.modal", () => {
    const first = element.querySelector(".modal-body input:not([type=hidden]), .modal-body textarea, .modal-body button");
    (first || element).focus();
  }, { once: true });
  element.addEventListener("hidden.bs.modal", () => {
    dialog.dispose();
    event.detail.target.innerHTML = "";
    if (dialogOpener && document.contains(dialogOpener)) dialogOpener.focus();
  }, { once: true });
  dialog.show();
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

// Launch page: filter a list of choices by name as you type ([data-filter-list]),
// without a request; the rows carry data-name in lower case.
document.addEventListener("input", (event) => {
  const input = event.target.closest("[data-filter-list]");
  if (!input) return;
  const wanted = input.value.trim().replace(/^\*/, "").trim().toLowerCase();
  document.querySelectorAll(`${input.dataset.filterList} [data-name]`).forEach((row) => {
    row.hidden = wanted !== "" && !row.dataset.name.includes(wanted);
  });
});

// Launch page: after the preview came back, apply each image's fit to the chosen
// flavor (#fit-data: {image pk: "Not available: …" or ""}) to the radios in place.
document.addEventListener("htmx:afterSettle", () => {
  const data = document.getElementById("fit-data");
  if (!data) return;
  const fit = JSON.parse(data.textContent);
  Object.entries(fit).forEach(([pk, why]) => {
    const radio = document.getElementById(`image-${pk}`);
    const note = document.getElementById(`image-${pk}-why`);
    if (!radio || !note) return;
    radio.disabled = why !== "";
    if (radio.disabled) radio.checked = false;
    note.textContent = why;
  });
});

// Tab and Shift+Tab wrap around inside an open dialog (focus never leaves it, even
// past the last element of the page, where Bootstrap's own trap cannot see it).
document.addEventListener("keydown", (event) => {
  if (event.key !== "Tab") return;
  const dialog = document.querySelector(".modal.show");
  if (!dialog) return;
  const focusable = [...dialog.querySelectorAll(
    "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), textarea:not([disabled]), select:not([disabled])"
  )].filter((element) => element.offsetParent !== null);
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
});
