// Help request page for seniors: Ctrl+Space plays the asked range (all the audio this page gets).
(function () {
  "use strict";
  const root = document.getElementById("help");
  const audio = document.getElementById("help-audio");
  if (!root || !audio) return;
  // The audio is only the asked range (with half a second either side): play it from its start.
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey && ev.code === "Space") {
      ev.preventDefault();
      if (audio.paused) { audio.currentTime = 0; audio.play(); } else { audio.pause(); }
    }
  });
})();
