// The chat widget's one script tag, for any page:
//
//   <script src="https://hub.example/widget.js"
//           data-hub="https://hub.example:4434/chathub"
//           data-channel="support"></script>
//
// A classic script (no imports, so a plain <script> tag loads it): it
// reads its own tag and loads the panel (`panel.js`, an ES module beside
// it) only then, so the tag costs a page a few hundred bytes until the
// widget mounts. `data-hashes` says where the WebTransport certificate's
// hash is ("none" for a certificate the browser trusts); by default the
// hub's `/chathub/cert-hashes.json` beside this script.

(() => {
  const tag = document.currentScript;
  if (!(tag instanceof HTMLScriptElement) || tag.dataset.hub === undefined) {
    console.error("chathub widget: the script tag needs data-hub (the WebTransport URL)");
    return;
  }
  const base = new URL(".", tag.src);
  const hashes = tag.dataset.hashes ?? new URL("chathub/cert-hashes.json", base).href;
  const options = {
    hub: tag.dataset.hub,
    channel: tag.dataset.channel ?? "support",
    title: tag.dataset.title ?? "Chat with us",
    hashesUrl: hashes === "none" ? null : hashes,
  };
  const load = (): void => {
    const panel: Promise<typeof import("./panel.js")> = import(new URL("panel.js", base).href);
    panel.then((module) => module.mount(options)).catch((err) => console.error("chathub widget:", err));
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
