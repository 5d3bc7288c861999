// Review page: keyboard control of the player and the form. No inline script (CSP forbids it).
(function () {
  "use strict";
  const audio = document.getElementById("clip-audio");
  const form = document.getElementById("review-form");
  const transcript = document.getElementById("transcript");
  if (!audio || !form) return;

  let submitted = false;
  form.addEventListener("submit", function (ev) {
    if (submitted) { ev.preventDefault(); return; }  // a double Enter must not submit twice
    submitted = true;
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey && ev.code === "Space") {
      ev.preventDefault();
      if (audio.paused) { audio.play(); } else { audio.pause(); }
    } else if (ev.ctrlKey && ev.key.toLowerCase() === "r") {
      ev.preventDefault();
      audio.currentTime = Math.max(0, audio.currentTime - 2);
      audio.play();
    } else if (ev.key === "Enter" && !ev.shiftKey && !ev.ctrlKey && !ev.altKey) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  const left = document.getElementById("lease-left");
  if (left) {
    let seconds = parseInt(left.dataset.seconds || "0", 10);
    setInterval(function () {
      seconds = Math.max(0, seconds - 1);
      left.textContent = seconds >= 60 ? Math.floor(seconds / 60) + " min" : seconds + " s";
    }, 1000);
  }
  // Start playing at once; a browser that blocks autoplay before the first key press just waits.
  audio.play().catch(function () {});
  transcript.focus();
  transcript.setSelectionRange(transcript.value.length, transcript.value.length);
})();
