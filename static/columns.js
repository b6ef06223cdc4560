// The column buttons beside the prompt editor: a click writes the column's placeholder (as the
// server spells it, quoted when the name needs it) where the cursor was in the last prompt box used (the row prompt by default), and the live preview follows.
document.addEventListener("DOMContentLoaded", () => {
  const boxes = document.querySelectorAll("textarea[data-prompt]");
  let target = document.querySelector("textarea[data-prompt='user']");
  boxes.forEach((box) => box.addEventListener("focus", () => { target = box; }));
  document.querySelectorAll("[data-column]").forEach((button) => {
    button.addEventListener("click", () => {
      if (!target) return;
      const text = button.dataset.placeholder;
      const start = target.selectionStart ?? target.value.length;
      const end = target.selectionEnd ?? start;
      target.value = target.value.slice(0, start) + text + target.value.slice(end);
      target.focus();
      target.setSelectionRange(start + text.length, start + text.length);
      target.dispatchEvent(new Event("input", { bubbles: true }));
    });
  });
});
