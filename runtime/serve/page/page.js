// The page shipped with `traductor serve`: text and documents through the HTTP API.
"use strict";

// The API lives at the server's root; this page is served there or at page/.
const ROOT = location.pathname.replace(/page\/(index\.html)?$/, "").replace(/[^/]*$/, "");
const $ = (id) => document.getElementById(id);
let languages = [];
const names = {}; // code -> name: the sources from /languages, the default target from settings

async function api(path, options) {
  const r = await fetch(ROOT + path, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function fillTargets(preferred) {
  const entry = languages.find((l) => l.code === $("source").value);
  const select = $("target");
  select.replaceChildren(...(entry ? entry.targets : []).map(
    (code) => new Option(names[code] ? `${names[code]} (${code})` : code, code),
  ));
  if (preferred && entry && entry.targets.includes(preferred)) select.value = preferred;
}

function fields() {
  const out = { source: $("source").value, target: $("target").value };
  if ($("api-key").value) out.api_key = $("api-key").value;
  return out;
}

async function translateText(event) {
  event.preventDefault();
  const q = $("q").value;
  if (!q.trim()) return;
  $("out").textContent = "…";
  try {
    const body = await api("translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ q, format: "text", ...fields() }),
    });
    $("out").textContent = body.translatedText;
  } catch (e) {
    $("out").textContent = `error: ${e.message}`;
  }
}

async function translateFile(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  for (const [k, v] of Object.entries(fields())) form.append(k, v);
  $("download").hidden = true;
  $("file-status").textContent = `translating ${file.name}…`;
  try {
    const body = await api("translate_file", { method: "POST", body: form });
    $("download").href = body.translatedFileUrl;
    $("download").textContent = `Download ${decodeURIComponent(body.translatedFileUrl.split("/").pop().replace(/^[^.]*\./, ""))}`;
    $("download").hidden = false;
    $("file-status").textContent = `${file.name} translated`;
  } catch (e) {
    $("file-status").textContent = `error: ${e.message}`;
  }
}

function swap() {
  const [source, target] = [$("source").value, $("target").value];
  if (!languages.some((l) => l.code === target && l.targets.includes(source))) return;
  $("source").value = target;
  fillTargets(source);
}

async function start() {
  const [langs, settings] = await Promise.all([api("languages"), api("frontend/settings")]);
  languages = langs;
  for (const l of [settings.language.source, settings.language.target, ...langs]) {
    names[l.code] = l.name;
  }
  $("source").replaceChildren(...langs.map((l) => new Option(`${l.name} (${l.code})`, l.code)));
  $("source").value = settings.language.source.code;
  fillTargets(settings.language.target.code);
  $("key-label").hidden = !settings.keyRequired;
  if (settings.filesTranslation) {
    $("file").accept = settings.supportedFilesFormat.join(",");
    $("file-form").hidden = false;
  }
  $("source").addEventListener("change", () => fillTargets($("target").value));
  $("swap").addEventListener("click", swap);
  $("text-form").addEventListener("submit", translateText);
  $("file-form").addEventListener("submit", translateFile);
  $("status").textContent = "";
}

start().catch((e) => { $("status").textContent = `error: ${e.message}`; });
