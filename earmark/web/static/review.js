// The review workbench: everything from the keyboard, also while the cursor is in the transcript.
// No inline script (CSP forbids it); configuration comes from data-config on #review.
(function () {
  "use strict";
  // The next clip's page comes with the submit answer and is swapped in without a navigation:
  // mount() wires one clip's page; its listeners and timers go with teardown().
  let teardown = null;

  function swap(url, html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const fresh = doc.querySelector("main");
    const here = document.querySelector("main");
    if (!fresh || !here || !doc.getElementById("review")) { location.assign(url); return; }
    if (teardown) teardown();
    here.replaceWith(document.adoptNode(fresh));
    document.title = doc.title;
    // Replace, not push: a submitted clip's page is closed, so Back leaves the review session
    // instead of walking through clips that can no longer be opened.
    history.replaceState(null, "", url);
    mount();
  }

  function mount() {
    const root = document.getElementById("review");
    if (!root) return;
    const ctl = new AbortController();
    const signal = ctl.signal;
    const timers = [];
    const cfg = JSON.parse(root.dataset.config);
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const audio = document.getElementById("clip-audio");
    const form = document.getElementById("review-form");
    const wake = document.getElementById("wakeword-form"); // the wake-word team's page instead
    const box = document.getElementById("transcript");
    const intent = document.getElementById("intent");
    const status = document.getElementById("status");
    const shownAt = performance.now();
    let busy = false;
    let range = null; // [start, end] seconds
    let markStart = null;
    let slots = (cfg.slots || []).map(function (s) { return Object.assign({ candidates: [], pick: 0 }, s); });
    const speeds = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0];
    let speedIndex = 2;

    function say(text) { if (status) status.textContent = text; }

    async function post(url, body) {
      const resp = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
        credentials: "same-origin",
      });
      let data = {};
      try { data = await resp.json(); } catch (e) { data = {}; }
      if (!resp.ok) {
        const msg = (data.error && data.error.message) || ("request failed (" + resp.status + ")");
        if (data.next) { alert(msg); location.assign(data.next); }
        throw new Error(msg);
      }
      return data;
    }

    // -- waveform ------------------------------------------------------------------------------
    const canvas = document.getElementById("wave");
    function draw() {
      if (!canvas) return;
      const ctx = canvas.getContext("2d");
      const w = canvas.width, h = canvas.height, peaks = cfg.peaks || [];
      ctx.clearRect(0, 0, w, h);
      if (range) {
        ctx.fillStyle = "rgba(36,86,214,0.15)";
        ctx.fillRect(range[0] / cfg.duration * w, 0, (range[1] - range[0]) / cfg.duration * w, h);
      }
      ctx.fillStyle = "#55637a";
      const step = w / Math.max(peaks.length, 1);
      peaks.forEach(function (p, i) {
        const bar = Math.max(1, p * (h - 6));
        ctx.fillRect(i * step, (h - bar) / 2, Math.max(1, step - 1), bar);
      });
      if (audio && cfg.duration) {
        ctx.fillStyle = "#d62424";
        ctx.fillRect(audio.currentTime / cfg.duration * w, 0, 2, h);
      }
    }
    if (canvas) {
      canvas.addEventListener("click", function (ev) {
        const rect = canvas.getBoundingClientRect();
        audio.currentTime = (ev.clientX - rect.left) / rect.width * cfg.duration;
      }, { signal: signal });
    }
    const playButton = document.getElementById("play");
    function togglePlay() { if (audio.paused) audio.play().catch(function () {}); else audio.pause(); }
    if (audio) {
      audio.addEventListener("timeupdate", draw, { signal: signal });
      if (playButton) {
        // A visible control for when autoplay is blocked, or for a mouse or a screen reader.
        const label = function () { playButton.firstChild.textContent = audio.paused ? "Play " : "Pause "; };
        playButton.addEventListener("click", function () {
          togglePlay();
          // Back to the transcript (or the wake-word question): Enter there submits; on the
          // button it would only pause.
          if (box) box.focus();
          else if (wake) document.getElementById("wake-choice").focus();
        }, { signal: signal });
        audio.addEventListener("play", label, { signal: signal });
        audio.addEventListener("pause", label, { signal: signal });
      }
      audio.play().catch(function () {});
    }
    draw();

    function showRange() {
      const el = document.getElementById("range");
      if (el) el.textContent = range ? range[0].toFixed(2) + "–" + range[1].toFixed(2) + " s" : "none";
      draw();
    }
    function currentRange() {
      if (range) return range;
      const t = audio ? audio.currentTime : 0;
      return [Math.max(0, t - 2), Math.max(0.2, Math.min(cfg.duration, t || cfg.duration))];
    }

    // -- placeholders are tokens: they cannot be edited into text -----------------------------------
    const placeholderRe = /\[[A-Z_]+\]/g;
    function placeholders(text) { return (text.match(placeholderRe) || []).slice().sort().join("|"); }
    if (box) {
      const original = placeholders(box.value);
      let lastGood = box.value;
      const tokens = document.getElementById("tokens");
      const renderTokens = function () {
        if (!tokens) return;
        tokens.textContent = "";
        box.value.split(/(\[[A-Z_]+\])/).forEach(function (part) {
          if (!part) return;
          const span = document.createElement("span");
          span.textContent = part;
          if (/^\[[A-Z_]+\]$/.test(part)) span.className = "pii";
          tokens.appendChild(span);
        });
      };
      box.addEventListener("input", function () {
        if (placeholders(box.value) !== original) {
          const pos = box.selectionStart;
          box.value = lastGood;
          box.setSelectionRange(Math.max(0, pos - 1), Math.max(0, pos - 1));
          say("redacted placeholders cannot be edited");
        } else {
          lastGood = box.value;
        }
        updateMode();
        renderTokens();
      });
      renderTokens();
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    }

    // Slots count as an edit too: tagged, removed or an entity picked by hand (not the entity the
    // tool proposes, which the reviewer only verifies).
    const slotKey = function () { return JSON.stringify(slots.map(function (s) { return [s.type, s.value]; })); };
    const initialSlots = slotKey();
    let entityPicked = false;
    function changed() {
      return box && (box.value !== cfg.transcript || (intent && intent.value !== cfg.intent)
        || slotKey() !== initialSlots || entityPicked);
    }
    function updateMode() {
      if (signal.aborted) return; // this clip's page was swapped out: the element is the next clip's
      const el = document.getElementById("mode");
      if (!el) return;
      const edit = changed();
      el.textContent = edit ? "edit" : "verify";
      el.className = "mode" + (edit ? " edit" : "");
    }
    if (intent) intent.addEventListener("input", updateMode);

    // -- slots and entity linking -----------------------------------------------------------------
    const slotBox = document.getElementById("slots");
    const legend = document.getElementById("slot-legend");
    if (legend) {
      legend.textContent = "Slots: " + cfg.slot_types.slice(0, 9).map(function (t, i) { return "Alt+" + (i + 1) + " " + t; }).join(" · ");
    }
    function renderSlots() {
      if (!slotBox) return;
      slotBox.textContent = "";
      slots.forEach(function (s, i) {
        const el = document.createElement("span");
        el.className = "slot";
        el.dataset.testid = "slot";
        el.setAttribute("data-testid", "slot");
        const b = document.createElement("b");
        b.textContent = s.type;
        el.appendChild(b);
        el.appendChild(document.createTextNode(" " + s.value));
        if (s.candidates.length) {
          const sel = document.createElement("select");
          sel.setAttribute("aria-label", "entity for " + s.value);
          const none = document.createElement("option");
          none.value = ""; none.textContent = "(no entity)";
          sel.appendChild(none);
          s.candidates.forEach(function (c) {
            const o = document.createElement("option");
            o.value = c.id; o.textContent = c.name + " (" + c.type + ")";
            sel.appendChild(o);
          });
          sel.value = s.entity_id || "";
          sel.addEventListener("change", function () { s.entity_id = sel.value || null; entityPicked = true; updateMode(); });
          el.appendChild(sel);
        }
        slotBox.appendChild(el);
        if (i === slots.length - 1) el.classList.add("last");
      });
      updateMode();
    }
    async function fetchCandidates(s) {
      try {
        const url = "/review/" + cfg.assignment + "/link?type=" + encodeURIComponent(s.type) + "&value=" + encodeURIComponent(s.value);
        const resp = await fetch(url, { credentials: "same-origin", signal: signal });
        s.candidates = resp.ok ? await resp.json() : [];
        if (s.candidates.length && !s.entity_id) s.entity_id = s.candidates[0].id;
      } catch (e) { s.candidates = []; }
      if (signal.aborted) return;
      renderSlots();
    }
    renderSlots();

    function tagSlot(index) {
      const type = cfg.slot_types[index];
      if (!type || !box) return;
      let start = box.selectionStart, end = box.selectionEnd;
      while (start < end && box.value[start] === " ") start++;
      while (end > start && box.value[end - 1] === " ") end--;
      if (end <= start) { say("select the words of the slot first"); return; }
      const value = box.value.slice(start, end);
      if (/[\[\]]/.test(value)) { say("a slot cannot cover a redacted placeholder"); return; }
      slots = slots.filter(function (s) { return s.end <= start || s.start >= end; });
      const slot = { type: type, start: start, end: end, value: value, entity_id: null, candidates: [], pick: 0 };
      slots.push(slot);
      renderSlots();
      say("tagged " + type + ": " + value);
      fetchCandidates(slot);
    }
    function cycleCandidate() {
      const s = slots[slots.length - 1];
      if (!s || !s.candidates.length) return;
      const ids = s.candidates.map(function (c) { return c.id; }).concat([null]);
      s.entity_id = ids[(ids.indexOf(s.entity_id) + 1) % ids.length];
      renderSlots();
    }
    // Offsets must follow the text if the reviewer edits around a slot: re-find each value.
    function currentSlots() {
      const text = box ? box.value : "";
      return slots.map(function (s) {
        let at = text.slice(s.start, s.end) === s.value ? s.start : text.indexOf(s.value);
        return at < 0 ? null : { type: s.type, start: at, end: at + s.value.length, entity_id: s.entity_id || null };
      }).filter(Boolean);
    }

    // -- actions ----------------------------------------------------------------------------------
    async function submit(flag) {
      if (busy || !box) return;
      busy = true;
      say("saving…");
      try {
        const data = await post("/review/" + cfg.assignment + "/submit", {
          transcript: box.value,
          intent: intent ? intent.value : "",
          slots: currentSlots(),
          flag: flag || null,
          mode: changed() ? "edit" : "verify",
          ms: Math.round(performance.now() - shownAt),
        });
        if (data.html && data.next) swap(data.next, data.html);
        else location.assign(data.next || "/review");
      } catch (e) {
        busy = false;
        say(e.message);
      }
    }
    async function action(path, body, confirmText) {
      if (busy) return;
      if (confirmText && !window.confirm(confirmText)) return;
      busy = true;
      try {
        const data = await post("/review/" + cfg.assignment + path, body);
        // Replace, as a submit does: Back must not lead to the clip just given up.
        location.replace(data.next || "/review");
      } catch (e) { busy = false; say(e.message); }
    }
    if (form) form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(null); });

    // The wake-word page: one choice (keys 1 to 6), then Enter.
    async function answerWake() {
      if (busy || !wake) return;
      const picked = wake.querySelector('input[name="label"]:checked');
      if (!picked) { say("choose what woke the device first (keys 1 to " + wake.querySelectorAll('input[name="label"]').length + ")"); return; }
      busy = true;
      say("saving…");
      try {
        const data = await post("/wakeword/" + cfg.assignment + "/answer", {
          label: picked.value,
          ms: Math.round(performance.now() - shownAt),
        });
        if (data.html && data.next) swap(data.next, data.html);
        else location.assign(data.next || "/wakeword");
      } catch (e) {
        busy = false;
        say(e.message);
      }
    }
    if (wake) wake.addEventListener("submit", function (ev) { ev.preventDefault(); answerWake(); }, { signal: signal });
    // Focus on the question, so a screen reader says that a new clip is here and what to answer.
    if (wake) document.getElementById("wake-choice").focus();

    const helpDialog = document.getElementById("help-dialog");
    const question = document.getElementById("question");
    if (helpDialog) {
      document.getElementById("help-form").addEventListener("submit", async function (ev) {
        ev.preventDefault();
        const r = currentRange();
        helpDialog.close();
        try {
          await post("/review/" + cfg.assignment + "/help", { start: r[0], end: r[1], question: question.value });
          say("question sent to the seniors");
          question.value = "";
          pollInbox();
        } catch (e) { say(e.message); }
        box.focus();
      });
    }
    const skipDialog = document.getElementById("skip-dialog");
    if (skipDialog) {
      document.getElementById("skip-form").addEventListener("submit", function (ev) {
        ev.preventDefault();
        skipDialog.close();
        action("/skip", { reason: document.getElementById("skip-reason").value });
      });
      document.getElementById("skip-reason").addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") { ev.preventDefault(); document.getElementById("skip-form").requestSubmit(); }
      });
    }

    // -- answers from seniors ---------------------------------------------------------------------
    let answers = [];
    const inboxEl = document.getElementById("inbox");
    async function pollInbox() {
      if (!inboxEl) return;
      try {
        const resp = await fetch("/review/" + cfg.assignment + "/inbox", { credentials: "same-origin", signal: signal });
        if (!resp.ok) return;
        answers = await resp.json();
      } catch (e) { return; }
      inboxEl.textContent = "";
      answers.forEach(function (a) {
        const p = document.createElement("p");
        p.textContent = a.state === "answered" ? "Q: " + a.question + " — A: " + a.answer + " (Alt+Y applies)" : "Q: " + a.question + " (waiting)";
        inboxEl.appendChild(p);
      });
      inboxEl.hidden = answers.length === 0;
    }
    async function applyAnswer() {
      const a = answers.find(function (x) { return x.state === "answered"; });
      if (!a || !box) { say("no answer to apply yet"); return; }
      const start = box.selectionStart, end = box.selectionEnd;
      const candidate = box.value.slice(0, start) + a.answer + box.value.slice(end);
      if (placeholders(candidate) !== placeholders(box.value)) { say("the answer cannot replace a placeholder"); return; }
      box.value = candidate;
      box.dispatchEvent(new Event("input"));
      try { await post("/help/" + a.id + "/apply", {}); } catch (e) { say(e.message); }
      pollInbox();
    }
    // Side requests wait until the clip can play: the audio comes first.
    function afterAudio(fn) {
      if (!audio || audio.readyState >= 3) { fn(); return; }
      let done = false;
      const once = function () { if (!done) { done = true; fn(); } };
      audio.addEventListener("canplay", once);
      audio.addEventListener("error", once);
      setTimeout(once, 1500);
    }
    afterAudio(function () {
      if (signal.aborted) return;
      // For the bench and the tests: the moment this clip can play.
      document.dispatchEvent(new CustomEvent("earmark:playable"));
      slots.forEach(fetchCandidates);
      pollInbox();
      timers.push(setInterval(pollInbox, 5000));
    });

    // -- keyboard -----------------------------------------------------------------------------------
    const keys = document.getElementById("keys-dialog");
    document.addEventListener("keydown", function (ev) {
      if (signal.aborted) return;
      const inText = ev.target && (ev.target.tagName === "TEXTAREA"
        || (ev.target.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(ev.target.type)));
      const inDialog = ev.target && ev.target.closest && ev.target.closest("dialog");
      if (inDialog) return;
      if ((ev.key === "?" && !inText) || (ev.ctrlKey && ev.key === "/")) {
        ev.preventDefault(); keys.showModal(); return;
      }
      if (ev.ctrlKey && ev.code === "Space") {
        ev.preventDefault(); togglePlay(); return;
      }
      if (ev.ctrlKey && ev.code === "KeyJ") {
        ev.preventDefault(); audio.currentTime = Math.max(0, audio.currentTime - 2); audio.play(); return;
      }
      if (ev.altKey && (ev.key === "ArrowUp" || ev.key === "ArrowDown")) {
        ev.preventDefault();
        speedIndex = Math.max(0, Math.min(speeds.length - 1, speedIndex + (ev.key === "ArrowUp" ? 1 : -1)));
        audio.playbackRate = speeds[speedIndex];
        document.getElementById("speed").textContent = speeds[speedIndex].toFixed(2).replace(/0$/, "") + "×";
        return;
      }
      if (ev.altKey && ev.code === "BracketLeft") { ev.preventDefault(); markStart = audio.currentTime; range = null; showRange(); say("range start " + markStart.toFixed(2) + " s"); return; }
      if (ev.altKey && ev.code === "BracketRight") {
        ev.preventDefault();
        const s = markStart === null ? Math.max(0, audio.currentTime - 2) : markStart;
        const e = Math.max(audio.currentTime, s + 0.1);
        range = [s, Math.min(e, cfg.duration)];
        showRange(); return;
      }
      if (!form && !wake) return; // the safety page has only the player keys
      // A held key repeats: never let that submit clip after clip nobody heard.
      // A digit typed (not End or an arrow from the keypad with NumLock off).
      const digit = /^(Digit|Numpad)[1-9]$/.test(ev.code) && /^[1-9]$/.test(ev.key) ? ev.key : null;
      if (ev.repeat && (ev.key === "Enter" || ev.altKey || (wake && digit))) { ev.preventDefault(); return; }
      if (ev.altKey && ev.code === "KeyP") {
        ev.preventDefault();
        const r = currentRange();
        action("/pii", { start: r[0], end: r[1] }, "Report personal data audible at " + r[0].toFixed(1) + "–" + r[1].toFixed(1) + " s? The clip will be re-protected.");
        return;
      }
      if (ev.altKey && ev.code === "KeyS") { ev.preventDefault(); if (audio) audio.pause(); action("/sensitive", {}); return; }
      if (wake) {
        const plain = !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey && !ev.isComposing;
        if (plain && digit) {
          const radio = wake.querySelector('input[data-key="' + digit + '"]');
          if (radio) { ev.preventDefault(); radio.checked = true; radio.focus(); }
          return;
        }
        if (plain && ev.key === "Enter") {
          const control = ev.target && ev.target.closest && ev.target.closest("a, button, select, summary, [role=button]");
          if (control) return;
          ev.preventDefault(); answerWake();
        }
        return;
      }
      if (ev.altKey && /^Digit[1-9]$/.test(ev.code)) { ev.preventDefault(); tagSlot(parseInt(ev.code.slice(5), 10) - 1); return; }
      if (ev.altKey && ev.code === "KeyL") { ev.preventDefault(); cycleCandidate(); return; }
      if (ev.altKey && ev.code === "KeyX") { ev.preventDefault(); slots.pop(); renderSlots(); return; }
      if (ev.altKey && ev.code === "KeyT") { ev.preventDefault(); box.focus(); return; }
      if (ev.altKey && ev.code === "KeyI") { ev.preventDefault(); intent.focus(); return; }
      if (ev.altKey && ev.code === "KeyA") { ev.preventDefault(); submit("accidental_activation"); return; }
      if (ev.altKey && ev.code === "KeyU") { ev.preventDefault(); submit("unintelligible"); return; }
      if (ev.altKey && ev.code === "KeyN") { ev.preventDefault(); submit("not_english"); return; }
      if (ev.altKey && ev.code === "KeyH") { ev.preventDefault(); helpDialog.showModal(); question.focus(); return; }
      if (ev.altKey && ev.code === "KeyY") { ev.preventDefault(); applyAnswer(); return; }
      if (ev.altKey && ev.code === "KeyK") { ev.preventDefault(); skipDialog.showModal(); document.getElementById("skip-reason").focus(); return; }
      if (ev.key === "Enter" && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.isComposing) {
        // Enter on a link, a button or a list does what that control does (log out, open "My
        // day", pick an entity), not a submit of the clip.
        const control = ev.target && ev.target.closest && ev.target.closest("a, button, select, summary, [role=button]");
        if (control) return;
        ev.preventDefault(); submit(null);
      }
    }, { signal: signal });

    const left = document.getElementById("lease-left");
    if (left) {
      let seconds = cfg.seconds_left;
      timers.push(setInterval(function () {
        seconds = Math.max(0, seconds - 1);
        left.textContent = seconds >= 60 ? Math.floor(seconds / 60) + " min" : seconds + " s";
        if (seconds === 0) say("your lease ran out: the clip went back to the queue");
      }, 1000));
    }

    teardown = function () {
      ctl.abort();
      timers.forEach(clearInterval);
      if (audio) {
        // A detached element would go on loading the closed assignment's audio.
        audio.pause();
        audio.removeAttribute("src");
        audio.load();
      }
    };
  }

  mount();
})();
