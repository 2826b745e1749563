// MultiFusion composer: an ordered list of text and image cards, each with a weight.
// Runs as gr.HTML's js_on_load, with `element`, `props`, `upload` and `watch` from Gradio.
// The value it keeps in props.value: {segments: [{type: "text", text, weight, lang} | {type: "image", path, url, name, weight}]}.

const LANGS = [["auto", "auto"], ["en", "English"], ["de", "Deutsch"], ["fr", "Français"], ["it", "Italiano"], ["es", "Español"]];
const list = element.querySelector(".mf-list");
const notice = element.querySelector(".mf-notice");
const fileInput = element.querySelector(".mf-file");
let segments = read(props.value);
let dragFrom = null;
let insertAt = null;

function read(value) {
  if (typeof value === "string") {
    try { value = JSON.parse(value); } catch (e) { value = null; }
  }
  const items = value && Array.isArray(value.segments) ? value.segments : [];
  return items.map((s) => ({ ...s, weight: Number(s.weight ?? 1) }));
}

function commit() {
  props.value = { segments: segments.map((s) => ({ ...s })) };
  keep();
}

// The composition survives a reload: kept in this browser's storage (image cards by their uploaded file) and
// given back by the page's load event (ui/demo.py, RESTORE_COMPOSITION).
function keep() {
  try { localStorage.setItem("multifusion-studio.composition", JSON.stringify({ segments })); } catch (e) { /* storage full or off */ }
}

function focusCard(index, control) {
  const card = list.querySelector(`.mf-card[data-index="${index}"]`);
  const target = card && control ? card.querySelector(control) : card;
  (target || element.querySelector(".mf-add-text")).focus();
}

function say(message) {
  notice.textContent = message || "";
  notice.hidden = !message;
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, val] of Object.entries(attrs)) {
    if (key === "text") node.textContent = val;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), val);
    else if (val !== false && val !== null && val !== undefined) node.setAttribute(key, val === true ? "" : val);
  }
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

function move(from, to) {
  if (to < 0 || to >= segments.length || from === to) return;
  const [item] = segments.splice(from, 1);
  segments.splice(to, 0, item);
  commit();
  render();
  const card = list.querySelector(`.mf-card[data-index="${to}"]`);
  if (card) card.focus();
}

function gap(index) {
  return el("div", {
    class: "mf-gap", "data-index": index, "aria-hidden": "true",
    ondragover: (e) => { e.preventDefault(); e.currentTarget.classList.add("mf-over"); },
    ondragleave: (e) => e.currentTarget.classList.remove("mf-over"),
    ondrop: (e) => dropAt(e, index),
  }, [el("span", { text: "drop here" })]);
}

async function dropAt(event, index) {
  event.preventDefault();
  event.stopPropagation();
  list.classList.remove("mf-dragging");
  const files = Array.from(event.dataTransfer?.files || []);
  if (files.length) {
    await addImages(files, index);
  } else if (dragFrom !== null) {
    const from = dragFrom;
    dragFrom = null;
    move(from, index > from ? index - 1 : index);
  }
}

async function decodes(file) {
  // A file named .png that is not one would otherwise become a card with a broken picture until Generate.
  try {
    (await createImageBitmap(file)).close();
    return true;
  } catch (err) {
    return false;
  }
}

async function addImages(files, index) {
  const typed = files.filter((f) => f.type.startsWith("image/"));
  if (!typed.length) {
    say("Only image files can be added (PNG, JPEG, WebP, ...).");
    return;
  }
  const readable = await Promise.all(typed.map(decodes));
  const images = typed.filter((f, i) => readable[i]);
  const broken = typed.filter((f, i) => !readable[i]).map((f) => f.name);
  if (!images.length) {
    say(`Not a readable image: ${broken.join(", ")}.`);
    return;
  }
  say(`Uploading ${images.length} image${images.length > 1 ? "s" : ""}…`);
  try {
    let at = index;
    for (const file of images) {
      const { path, url } = await upload(file);
      const name = file.name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 40) || "image";
      segments.splice(at, 0, { type: "image", path, url, name, weight: 1 });
      at += 1;
    }
    say(broken.length ? `Left out, not a readable image: ${broken.join(", ")}.` : "");
    commit();
    render();
  } catch (err) {
    say(`Upload failed: ${err && err.message ? err.message : err}`);
  }
}

function weightControl(seg, index) {
  const output = el("output", { class: "mf-weight-value", text: seg.weight.toFixed(2) });
  const slider = el("input", {
    type: "range", min: "0", max: "5", step: "0.05", value: String(seg.weight), class: "mf-weight-slider",
    "aria-label": `Weight of segment ${index + 1}`,
    oninput: (e) => {
      seg.weight = Number(e.target.value);
      output.textContent = seg.weight.toFixed(2);
      e.target.closest(".mf-card").classList.toggle("mf-muted", seg.weight === 0);
      commit();
    },
  });
  return el("label", { class: "mf-weight" }, [el("span", { text: "weight" }), slider, output]);
}

function copyIcon() {
  // inline SVG: icon fonts and emoji are not on every machine, and nothing is fetched from a CDN
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.innerHTML = '<rect x="5" y="5" width="9" height="9" rx="2" fill="none" stroke="currentColor" stroke-width="1.6"/>' +
    '<path d="M3 11V3a1 1 0 0 1 1-1h7" fill="none" stroke="currentColor" stroke-width="1.6"/>';
  return svg;
}

function card(seg, index) {
  const isText = seg.type === "text";
  const head = el("div", { class: "mf-head" }, [
    el("span", { class: "mf-handle", title: "Drag to reorder", text: "⠿" }),
    el("span", { class: "mf-kind", text: isText ? `Text ${index + 1}` : `Image ${index + 1}` }),
    isText ? el("select", {
      class: "mf-lang", "aria-label": `Language of segment ${index + 1}`,
      onchange: (e) => { seg.lang = e.target.value; commit(); },
    }, LANGS.map(([code, label]) => el("option", { value: code, selected: (seg.lang || "auto") === code, text: label }))) : null,
    el("span", { class: "mf-spacer" }),
    el("button", { class: "mf-btn mf-up", title: "Move up (Alt+↑)", "aria-label": `Move segment ${index + 1} up`, text: "↑", disabled: index === 0, onclick: () => move(index, index - 1) }),
    el("button", { class: "mf-btn mf-down", title: "Move down (Alt+↓)", "aria-label": `Move segment ${index + 1} down`, text: "↓", disabled: index === segments.length - 1, onclick: () => move(index, index + 1) }),
    el("button", { class: "mf-btn mf-dup", title: "Duplicate", "aria-label": `Duplicate segment ${index + 1}`, onclick: () => { segments.splice(index + 1, 0, { ...seg }); commit(); render(); focusCard(index + 1, ".mf-dup"); } }, [copyIcon()]),
    el("button", { class: "mf-btn mf-del", title: "Remove", "aria-label": `Remove segment ${index + 1}`, text: "✕", onclick: () => { segments.splice(index, 1); commit(); render(); focusCard(Math.min(index, segments.length - 1), ".mf-del"); } }),
  ]);
  const body = isText
    ? el("textarea", {
        class: "mf-text", rows: "2", placeholder: "Describe… in English, Deutsch, Français, Italiano or Español",
        "aria-label": `Text of segment ${index + 1}`,
        oninput: (e) => { seg.text = e.target.value; commit(); },
      })
    : el("div", { class: "mf-thumb" }, [el("img", { src: seg.url || seg.thumb || "", alt: seg.name || "image" }), el("span", { class: "mf-name", text: seg.name || "" })]);
  if (isText) body.value = seg.text || "";
  return el("div", {
    class: `mf-card ${isText ? "mf-card-text" : "mf-card-image"}${seg.weight === 0 ? " mf-muted" : ""}`,
    draggable: "true", tabindex: "0", "data-index": index,
    ondragstart: (e) => {
      if (e.target.closest && e.target.closest("textarea, input, select, button")) { e.preventDefault(); return; }
      dragFrom = index;
      list.classList.add("mf-dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", `segment ${index + 1}`);
    },
    ondragend: () => { dragFrom = null; list.classList.remove("mf-dragging"); },
    ondragover: (e) => { if (e.dataTransfer?.types?.includes("Files")) { e.preventDefault(); e.currentTarget.classList.add("mf-over"); } },
    ondragleave: (e) => e.currentTarget.classList.remove("mf-over"),
    ondrop: (e) => { if (e.dataTransfer?.files?.length) { e.currentTarget.classList.remove("mf-over"); dropAt(e, index + 1); } },
    onkeydown: (e) => {
      if (e.altKey && e.key === "ArrowUp") { e.preventDefault(); move(index, index - 1); }
      if (e.altKey && e.key === "ArrowDown") { e.preventDefault(); move(index, index + 1); }
    },
    onfocusin: () => { insertAt = index + 1; },
  }, [head, body, weightControl(seg, index)]);
}

function render() {
  list.replaceChildren();
  list.appendChild(gap(0));
  segments.forEach((seg, i) => {
    list.appendChild(card(seg, i));
    list.appendChild(gap(i + 1));
  });
  if (!segments.length) {
    list.appendChild(el("div", { class: "mf-empty", text: "Add a text card, or drop images here, to start a prompt." }));
  }
}

element.querySelector(".mf-add-text").addEventListener("click", () => {
  segments.push({ type: "text", text: "", weight: 1, lang: "auto" });
  commit();
  render();
  const areas = list.querySelectorAll("textarea");
  if (areas.length) areas[areas.length - 1].focus();
});
element.querySelector(".mf-add-image").addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", async () => {
  await addImages(Array.from(fileInput.files || []), segments.length);
  fileInput.value = "";
});
list.addEventListener("dragover", (e) => { if (e.dataTransfer?.types?.includes("Files")) { e.preventDefault(); list.classList.add("mf-dragging"); } });
list.addEventListener("drop", (e) => dropAt(e, segments.length));
// An image pasted anywhere on the page joins the prompt, after the card last focused (or at the end).
document.addEventListener("paste", async (e) => {
  const files = Array.from(e.clipboardData?.files || []).filter((f) => f.type.startsWith("image/"));
  if (files.length) {
    e.preventDefault();
    await addImages(files, insertAt ?? segments.length);
  }
});
watch("value", () => { segments = read(props.value); say(""); render(); keep(); });
render();
