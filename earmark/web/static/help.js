// Help request page for seniors: Ctrl+Space plays just the asked range.
(function () {
  "use strict";
  const root = document.getElementById("help");
  const audio = document.getElementById("help-audio");
  if (!root || !audio) return;
  const start = Math.max(0, parseFloat(root.dataset.start) - 0.5);
  const end = parseFloat(root.dataset.end) + 0.5;
  audio.addEventListener("timeupdate", function () { if (audio.currentTime > end) audio.pause(); });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey && ev.code === "Space") {
      ev.preventDefault();
      if (audio.paused) { audio.currentTime = start; audio.play(); } else { audio.pause(); }
    }
  });
})();
