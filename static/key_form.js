// The key form: fields that only one provider uses (Azure's API version) are shown only while
// that provider is chosen. The server hides them the same way when it draws the page.
function setUpKeyForm() {
  const kind = document.getElementById("id_kind");
  if (!kind) return;
  const show = () => {
    for (const field of document.querySelectorAll("[data-only-for]")) {
      field.hidden = field.dataset.onlyFor !== kind.value;
    }
  };
  kind.addEventListener("change", show);
  show();
}

document.addEventListener("DOMContentLoaded", setUpKeyForm);
