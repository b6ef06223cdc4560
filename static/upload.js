// The upload page: drop a file on the zone, see the upload's progress, and hear at once
// (before sending anything) when a file is over the size limit. Without JavaScript the
// form still works as a plain upload.
function setUpUpload() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = form.querySelector("input[type=file]");
  const zone = document.getElementById("drop-zone");
  const message = document.getElementById("upload-message");
  const progress = document.getElementById("upload-progress");
  const bar = progress.querySelector(".progress-bar");
  const button = document.getElementById("upload-button");
  const maxBytes = Number(form.dataset.maxBytes);

  const tooBig = () => {
    const file = input.files[0];
    if (file && maxBytes && file.size > maxBytes) {
      message.textContent = `This file is larger than ${form.dataset.maxSize}, the most that can be uploaded. Split it into smaller files and upload each.`;
      return true;
    }
    message.textContent = "";
    return false;
  };

  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("drop-zone-active");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("drop-zone-active")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      tooBig();
    }
  });
  input.addEventListener("change", tooBig);
  // A file chosen before this script ran (a slow connection) or kept by the browser on going back
  // fired its change event unheard: check it now.
  tooBig();

  form.addEventListener("submit", (event) => {
    if (!input.files.length) return;
    event.preventDefault();
    if (tooBig()) return;
    const request = new XMLHttpRequest();
    request.open("POST", form.action || window.location.href);
    request.upload.addEventListener("progress", (progressEvent) => {
      if (!progressEvent.lengthComputable) return;
      const percent = Math.round((100 * progressEvent.loaded) / progressEvent.total);
      bar.style.width = `${percent}%`;
      progress.setAttribute("aria-valuenow", String(percent));
      bar.textContent = percent < 100 ? `${percent}%` : "Reading the file…";
    });
    request.addEventListener("load", () => {
      // After a redirect the browser has followed it: show where it led.
      if (request.responseURL && request.responseURL !== window.location.href) {
        window.location.assign(request.responseURL);
      } else {
        // The page came back with a message about the file: show it, ready for another try.
        const page = new DOMParser().parseFromString(request.responseText, "text/html");
        document.querySelector("main").replaceWith(page.querySelector("main"));
        setUpUpload();
      }
    });
    request.addEventListener("error", () => {
      message.textContent = "The upload was interrupted (the connection dropped). Nothing was kept; please try again.";
      button.disabled = false;
      progress.classList.add("d-none");
    });
    button.disabled = true;
    progress.classList.remove("d-none");
    request.send(new FormData(form));
  });
}

document.addEventListener("DOMContentLoaded", setUpUpload);
