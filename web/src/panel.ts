// The chat widget itself, loaded by widget.js: a launcher button and a
// panel (in a shadow root, so the page's styles and the widget's leave
// each other alone) with four views: the start form, the chat, the
// offline form and its thanks. Plain DOM, no framework; the SDK's
// CustomerClient does the talking, reconnecting and resuming.

import { CustomerClient, type ClientEvent, type SavedChat } from "./client.js";
import { HubError } from "./errors.js";
import type { ChatEvent, ChatId, OfflineForm, Party, QueuePlace } from "./frames.js";

/** What the script tag says. */
export interface WidgetOptions {
  /** The hub's WebTransport URL (`https://host:4434/chathub`). */
  hub: string;
  /** The channel chats start on. */
  channel: string;
  /** The launcher's and the panel's title. */
  title: string;
  /** Where the certificate hash is (JSON `{ hashes: [hex] }`); `null` for a trusted certificate. */
  hashesUrl: string | null;
}

/** Where a page keeps the chat to pick it up after a reload. */
const STORAGE_KEY = "chathub-widget";
/** The emoji the picker offers, with the names screen readers say. */
const EMOJI: ReadonlyArray<readonly [string, string]> = [
  ["🙂", "slightly smiling face"], ["😀", "grinning face"], ["😂", "face with tears of joy"], ["😉", "winking face"],
  ["😍", "smiling face with heart-eyes"], ["🤔", "thinking face"], ["😕", "confused face"], ["😢", "crying face"],
  ["😠", "angry face"], ["😮", "face with open mouth"], ["🙏", "folded hands"], ["👍", "thumbs up"],
  ["👎", "thumbs down"], ["👋", "waving hand"], ["👏", "clapping hands"], ["❤️", "red heart"],
  ["🎉", "party popper"], ["✅", "check mark"], ["❌", "cross mark"], ["⏳", "hourglass"],
  ["📦", "package"], ["💳", "credit card"], ["📎", "paperclip"], ["☕", "hot beverage"],
];

/** The longest message the form takes (the hub's own limit is higher). */
const MAX_TEXT = 4000;
/** The most chat events kept while a start is answered. */
const MAX_EARLY = 64;
/** How often a typing customer says so, in ms. */
const TYPING_EVERY_MS = 2000;
/** How long an agent's typing indicator shows, in ms. */
const TYPING_SHOWN_MS = 4000;

const STYLE = `
:host { all: initial; font: 15px/1.4 system-ui, sans-serif; color: #1d1d1f; }
* { box-sizing: border-box; font: inherit; }
.launcher { position: fixed; right: 1rem; bottom: 1rem; z-index: 2147483000; border: 0; border-radius: 2rem;
  padding: 0.7rem 1.2rem; background: #0b57d0; color: #fff; font-weight: 600; cursor: pointer;
  box-shadow: 0 2px 8px rgb(0 0 0 / 0.25); }
.panel { position: fixed; right: 1rem; bottom: 4.5rem; z-index: 2147483000; width: min(22rem, calc(100vw - 2rem));
  max-height: min(36rem, calc(100vh - 6rem)); display: flex; flex-direction: column; background: #fff;
  border: 1px solid #c7c7cc; border-radius: 0.75rem; box-shadow: 0 4px 20px rgb(0 0 0 / 0.2); overflow: hidden; }
.panel[hidden], [hidden] { display: none !important; }
header { display: flex; align-items: center; justify-content: space-between; padding: 0.6rem 0.8rem;
  background: #0b57d0; color: #fff; }
h2 { margin: 0; font-size: 1rem; font-weight: 600; }
.close { border: 0; background: transparent; color: #fff; font-size: 1.3rem; line-height: 1; cursor: pointer;
  padding: 0.1rem 0.4rem; border-radius: 0.3rem; }
section { display: flex; flex-direction: column; gap: 0.5rem; padding: 0.8rem; overflow: auto; min-height: 0; }
.chat { flex: 1; padding: 0; }
form { display: flex; flex-direction: column; gap: 0.5rem; }
label { display: flex; flex-direction: column; gap: 0.2rem; font-size: 0.9rem; }
input, textarea { border: 1px solid #8e8e93; border-radius: 0.4rem; padding: 0.45rem; width: 100%; }
textarea { resize: vertical; min-height: 2.6rem; }
button { cursor: pointer; }
.primary { border: 0; border-radius: 0.4rem; padding: 0.5rem 0.8rem; background: #0b57d0; color: #fff; font-weight: 600; }
.secondary { border: 1px solid #8e8e93; border-radius: 0.4rem; padding: 0.4rem 0.7rem; background: #fff; }
button:disabled { opacity: 0.6; cursor: default; }
:focus-visible { outline: 3px solid #f9ab00; outline-offset: 2px; }
.log { list-style: none; margin: 0; padding: 0.8rem; display: flex; flex-direction: column; gap: 0.4rem;
  overflow-y: auto; flex: 1; min-height: 8rem; }
.log li { max-width: 85%; padding: 0.4rem 0.6rem; border-radius: 0.6rem; background: #f2f2f7; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.log li.me { align-self: flex-end; background: #d3e3fd; }
.log li.system { align-self: center; background: none; color: #545458; font-size: 0.85rem; text-align: center; }
.who { display: block; font-size: 0.75rem; color: #545458; }
.status { margin: 0; padding: 0 0.8rem; min-height: 1.2rem; font-size: 0.85rem; color: #545458; }
.compose { flex-direction: row; align-items: flex-end; padding: 0.6rem 0.8rem; border-top: 1px solid #e5e5ea; }
.compose label { flex: 1; }
.actions { display: flex; justify-content: flex-end; padding: 0 0.8rem 0.6rem; }
.error { margin: 0; color: #b3261e; font-size: 0.85rem; }
.note { margin: 0; }
.emoji-toggle { border: 0; background: transparent; font-size: 1.25rem; padding: 0.3rem; border-radius: 0.4rem; }
.emoji { display: grid; grid-template-columns: repeat(8, 1fr); gap: 0.1rem; padding: 0.3rem 0.8rem; border-top: 1px solid #e5e5ea; }
.emoji button { border: 0; background: transparent; font-size: 1.2rem; padding: 0.2rem; border-radius: 0.3rem; }
.emoji button:hover { background: #f2f2f7; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

type Attrs = Record<string, string | boolean>;

/** An element with attributes (`true` for a bare one) and children. */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === true) node.setAttribute(name, "");
    else if (value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** A labelled field. */
function field(label: string, control: HTMLInputElement | HTMLTextAreaElement): HTMLLabelElement {
  return el("label", {}, el("span", {}, label), control);
}

/** What the page keeps across a reload. */
interface Stored {
  chat: ChatId;
  saved: SavedChat[];
}

function loadStored(): Stored | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as Stored | null;
    return stored !== null && typeof stored.chat === "number" && Array.isArray(stored.saved) ? stored : null;
  } catch {
    return null;
  }
}

function store(stored: Stored | null): void {
  try {
    if (stored === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
  } catch {
    // Storage refused (private mode, full): the chat lives as long as the page.
  }
}

/** Mounts the widget on the page once. */
export function mount(options: WidgetOptions): void {
  if (document.getElementById("chathub-widget") !== null) return;
  const host = el("div", { id: "chathub-widget" });
  const root = host.attachShadow({ mode: "open" });
  document.body.append(host);
  new Widget(options, root);
}

class Widget {
  private client: CustomerClient | null = null;
  private connecting: Promise<CustomerClient> | null = null;
  private chat: ChatId | null = null;
  private lastTyping = 0;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;

  private readonly launcher = el("button", { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "panel" });
  private readonly panel = el("div", { class: "panel", id: "panel", role: "dialog", "aria-labelledby": "title", hidden: true });

  // The start form.
  private readonly startName = el("input", { name: "name", autocomplete: "name", maxlength: "200" });
  private readonly startText = el("textarea", { name: "message", required: true, maxlength: String(MAX_TEXT), rows: "3" });
  private readonly startButton = el("button", { class: "primary", type: "submit" }, "Start chat");
  private readonly startError = el("p", { class: "error", role: "alert" });
  private readonly startView = el("section", { class: "start" });

  // The chat.
  private readonly log = el("ol", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Messages" });
  /** A chat start is in flight. */
  private starting = false;
  /** Chat events that came before the start's answer named the chat. */
  private early: ChatEvent[] = [];
  /** Each message's text in the log, by seq, for its edits and deletion. */
  private readonly messages = new Map<number, HTMLElement>();
  private readonly status = el("p", { class: "status", role: "status" });
  private readonly text = el("textarea", { name: "text", maxlength: String(MAX_TEXT), rows: "1", required: true });
  private readonly compose = el("form", { class: "compose" });
  private readonly emojiToggle = el(
    "button",
    { class: "emoji-toggle", type: "button", "aria-label": "Insert an emoji", "aria-expanded": "false", "aria-controls": "emoji" },
    "🙂",
  );
  private readonly emojiPicker = el("div", { class: "emoji", id: "emoji", role: "group", "aria-label": "Emoji", hidden: true });
  private readonly endButton = el("button", { class: "secondary", type: "button" }, "End chat");
  private readonly againButton = el("button", { class: "primary", type: "button", hidden: true }, "Start a new chat");
  private readonly returnButton = el("button", { class: "return secondary", type: "button", hidden: true }, "Return to chat");
  private readonly chatError = el("p", { class: "error", role: "alert" });
  private readonly chatView = el("section", { class: "chat", hidden: true });

  // The offline form.
  private readonly offlineMessage = el("p", { class: "note" });
  private readonly offlineOpens = el("p", { class: "note opens", hidden: true });
  private readonly offlineName = el("input", { name: "name", autocomplete: "name", maxlength: "200" });
  private readonly offlineEmail = el("input", { name: "email", type: "email", autocomplete: "email", required: true, maxlength: "254" });
  private readonly offlineText = el("textarea", { name: "message", required: true, maxlength: String(MAX_TEXT), rows: "4" });
  private readonly offlineButton = el("button", { class: "primary", type: "submit" }, "Send");
  private readonly offlineError = el("p", { class: "error", role: "alert" });
  private readonly offlineView = el("section", { class: "offline", hidden: true });

  // The offline form's thanks.
  private readonly thanks = el("p", { class: "note", tabindex: "-1" });
  private readonly thanksView = el("section", { class: "thanks", hidden: true });

  constructor(
    private readonly options: WidgetOptions,
    root: ShadowRoot,
  ) {
    this.launcher.textContent = options.title;
    const close = el("button", { class: "close", type: "button", "aria-label": "Close the chat window" }, "×");
    const startForm = el(
      "form",
      {},
      field("Your name (optional)", this.startName),
      field("How can we help?", this.startText),
      this.startError,
      this.startButton,
    );
    this.startView.append(startForm);
    for (const [emoji, name] of EMOJI) {
      const button = el("button", { type: "button", "aria-label": name, title: name }, emoji);
      button.addEventListener("click", () => this.insertEmoji(emoji));
      this.emojiPicker.append(button);
    }
    this.compose.append(
      this.emojiToggle,
      el("label", {}, el("span", { class: "sr-only" }, "Message"), this.text),
      el("button", { class: "primary", type: "submit" }, "Send"),
    );
    this.chatView.append(this.log, this.status, this.chatError, this.emojiPicker, this.compose, el("div", { class: "actions" }, this.endButton, this.returnButton, this.againButton));
    const offlineForm = el(
      "form",
      {},
      this.offlineMessage,
      this.offlineOpens,
      field("Your name (optional)", this.offlineName),
      field("Your email", this.offlineEmail),
      field("Your message", this.offlineText),
      this.offlineError,
      this.offlineButton,
    );
    this.offlineView.append(offlineForm);
    this.thanksView.append(this.thanks);
    this.panel.append(
      el("header", {}, el("h2", { id: "title" }, options.title), close),
      this.startView,
      this.chatView,
      this.offlineView,
      this.thanksView,
    );
    root.append(el("style", {}, STYLE), this.launcher, this.panel);

    this.launcher.addEventListener("click", () => this.toggle(this.panel.hidden));
    close.addEventListener("click", () => this.toggle(false));
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.toggle(false);
    });
    startForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.start();
    });
    this.compose.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    this.text.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter starts a new line.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      }
    });
    this.text.addEventListener("input", () => this.typing());
    this.emojiToggle.addEventListener("click", () => this.showEmoji(this.emojiPicker.hidden));
    this.emojiPicker.addEventListener("keydown", (event) => {
      // Escape closes the picker, not the whole panel.
      if (event.key === "Escape") {
        event.stopPropagation();
        this.showEmoji(false);
        this.emojiToggle.focus();
      }
    });
    this.endButton.addEventListener("click", () => void this.end());
    this.againButton.addEventListener("click", () => this.startOver());
    this.returnButton.addEventListener("click", () => void this.returnToChat());
    offlineForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.submitOffline();
    });

    // A page loaded again picks its chat up, from its first event.
    const stored = loadStored();
    if (stored !== null) {
      this.chat = stored.chat;
      this.show(this.chatView);
      void this.connect(stored.saved.map((saved) => ({ ...saved, after: 0 }))).catch((err) => this.fail(this.chatError, err));
    }
  }

  private toggle(open: boolean): void {
    this.panel.hidden = !open;
    this.launcher.setAttribute("aria-expanded", String(open));
    if (open) this.focusView();
    else this.launcher.focus();
  }

  private show(view: HTMLElement): void {
    for (const each of [this.startView, this.chatView, this.offlineView, this.thanksView]) each.hidden = each !== view;
    if (!this.panel.hidden) this.focusView();
  }

  private focusView(): void {
    const view = [this.startView, this.chatView, this.offlineView, this.thanksView].find((each) => !each.hidden);
    if (view === this.startView) this.startText.focus();
    else if (view === this.chatView) (this.text.disabled ? this.againButton : this.text).focus();
    else if (view === this.offlineView) this.offlineEmail.focus();
    else this.thanks.focus();
  }

  /** The client, connected once (the SDK reconnects by itself from then on). */
  private connect(resume: SavedChat[] = []): Promise<CustomerClient> {
    if (this.connecting !== null) return this.connecting;
    // The hashes are read again before every reconnect: the hub replaces
    // its certificate before it expires.
    const hashesUrl = this.options.hashesUrl ?? undefined;
    this.connecting = CustomerClient.connect(this.options.hub, { hashesUrl, resume }).then(
      (client) => {
        this.client = client;
        void this.pump(client);
        return client;
      },
      (err: unknown) => {
        this.connecting = null;
        throw err;
      },
    );
    return this.connecting;
  }

  private async pump(client: CustomerClient): Promise<void> {
    for await (const event of client) this.handle(event);
  }

  private handle(event: ClientEvent): void {
    if (event.type === "Typing") {
      if (event.chat === this.chat && event.from.type === "Agent") this.showTyping(event.from.agent);
      return;
    }
    if (event.type === "QueuePosition") {
      if (event.place.chat === this.chat) this.showPlace(event.place);
      return;
    }
    if (event.type !== "Chat") return;
    if (this.chat === null && this.starting) {
      // A new chat's first events travel on another stream than the
      // start's answer and may come first: kept until it names the chat.
      if (this.early.length < MAX_EARLY) this.early.push(event.event);
      return;
    }
    if (event.event.chat !== this.chat) return;
    this.render(event.event);
    if (this.client !== null && this.chat !== null && !this.text.disabled) {
      store({ chat: this.chat, saved: this.client.savedChats() });
    }
  }

  private render(event: ChatEvent): void {
    const kind = event.kind;
    switch (kind.type) {
      case "Message":
        this.messages.set(event.seq, this.line(kind.text, kind.from));
        break;
      case "Edited": {
        const text = this.messages.get(kind.seq);
        if (text !== undefined) text.textContent = `${kind.text} (edited)`;
        break;
      }
      case "Deleted": {
        const text = this.messages.get(kind.seq);
        if (text !== undefined) text.textContent = "Message deleted";
        this.messages.delete(kind.seq);
        break;
      }
      case "Assigned":
        this.line(`${kind.agent} joined the chat`);
        this.status.textContent = "";
        break;
      case "TransferredToAgent":
        this.line(`${kind.to} took over the chat`);
        break;
      case "Requeued":
        this.line("Waiting for another agent…");
        break;
      case "AgentGone":
        this.line(`${kind.agent} lost their connection`);
        break;
      case "FileShared":
        this.line(`shared a file: ${kind.file.name}`, kind.from);
        break;
      case "TicketCreated":
        this.line(`A ticket was made: ${kind.subject}`);
        break;
      case "Reopened":
        this.line("The chat is open again");
        this.ended(false);
        break;
      case "Ended":
        this.line("The chat has ended");
        this.ended(true);
        break;
      default:
        // Started, read marks, verification and the like show nothing.
        break;
    }
  }

  /** Adds a line to the log: a message of `from`, or a note of the hub's; answers the element holding its text. */
  private line(text: string, from?: Party): HTMLElement {
    const item = el("li", { class: from === undefined || from.type === "System" ? "system" : from.type === "Customer" ? "me" : "them" });
    if (from?.type === "Agent") item.append(el("span", { class: "who" }, from.agent));
    else if (from?.type === "Customer") item.append(el("span", { class: "sr-only" }, "You: "));
    const body = el("span", {}, text);
    item.append(body);
    this.log.append(item);
    this.log.scrollTop = this.log.scrollHeight;
    return body;
  }

  private showPlace(place: QueuePlace): void {
    const wait = place.estimatedWaitSecs === null ? "" : `, about ${Math.max(1, Math.round(place.estimatedWaitSecs / 60))} min`;
    this.status.textContent = `You are number ${place.position} in the queue${wait}`;
  }

  private showTyping(agent: string): void {
    const before = this.status.textContent;
    this.status.textContent = `${agent} is typing…`;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => {
      if (this.status.textContent === `${agent} is typing…`) this.status.textContent = before?.includes("typing") ? "" : before;
    }, TYPING_SHOWN_MS);
  }

  private ended(ended: boolean): void {
    this.text.disabled = ended;
    this.compose.hidden = ended;
    this.endButton.hidden = ended;
    this.againButton.hidden = !ended;
    // The end form: the customer may go back to the same chat within the
    // channel's return window (the hub says NotReturnable once it is over,
    // or on a channel without the end form).
    this.returnButton.hidden = !ended;
    if (ended) {
      this.status.textContent = "";
      store(null);
    }
  }

  private async start(): Promise<void> {
    const text = this.startText.value.trim();
    if (text === "") return;
    this.startButton.disabled = true;
    this.startError.textContent = "";
    this.starting = true;
    this.early = [];
    try {
      const client = await this.connect();
      const name = this.startName.value.trim() || null;
      const started = await client.startChat(this.options.channel, { name, email: null }, text);
      if (started.type === "Queued") {
        this.chat = started.chat;
        this.log.replaceChildren();
        this.messages.clear();
        this.ended(false);
        this.status.textContent = "Waiting for an agent…";
        for (const early of this.early) {
          if (early.chat === started.chat) this.render(early);
        }
        store({ chat: started.chat, saved: client.savedChats() });
        this.startText.value = "";
        this.show(this.chatView);
      } else {
        this.offline(started.form, name, text);
      }
    } catch (err) {
      this.fail(this.startError, err);
    } finally {
      this.starting = false;
      this.early = [];
      this.startButton.disabled = false;
    }
  }

  private offline(form: OfflineForm, name: string | null, text: string): void {
    this.offlineMessage.textContent = form.message;
    this.offlineOpens.hidden = form.opensAt === null;
    if (form.opensAt !== null) {
      const opens = new Date(form.opensAt).toLocaleString([], { weekday: "long", hour: "2-digit", minute: "2-digit" });
      this.offlineOpens.textContent = `We open again ${opens}.`;
    }
    const required = (key: string) => form.fields.some((field) => field.key === key && field.required);
    this.offlineName.required = required("name");
    this.offlineName.value = name ?? "";
    this.offlineText.value = text;
    this.show(this.offlineView);
  }

  private async submitOffline(): Promise<void> {
    const email = this.offlineEmail.value.trim();
    const message = this.offlineText.value.trim();
    if (email === "" || message === "") return;
    this.offlineButton.disabled = true;
    this.offlineError.textContent = "";
    try {
      const client = await this.connect();
      const ticket = await client.submitOfflineForm(this.options.channel, this.offlineName.value.trim() || null, email, message);
      this.thanks.textContent = `Thank you. We will answer at ${email} (ticket ${ticket}).`;
      this.startText.value = "";
      this.show(this.thanksView);
    } catch (err) {
      this.fail(this.offlineError, err);
    } finally {
      this.offlineButton.disabled = false;
    }
  }

  private showEmoji(open: boolean): void {
    this.emojiPicker.hidden = !open;
    this.emojiToggle.setAttribute("aria-expanded", String(open));
    if (open) this.emojiPicker.querySelector("button")?.focus();
  }

  /** Puts `emoji` where the caret is in the message, and goes back to it. */
  private insertEmoji(emoji: string): void {
    const { selectionStart: from, selectionEnd: to, value } = this.text;
    if (value.length + emoji.length > MAX_TEXT) return;
    this.text.value = value.slice(0, from) + emoji + value.slice(to);
    const caret = from + emoji.length;
    this.showEmoji(false);
    this.text.focus();
    this.text.setSelectionRange(caret, caret);
    this.typing();
  }

  private async send(): Promise<void> {
    const text = this.text.value.trim();
    if (text === "" || this.chat === null || this.client === null) return;
    this.chatError.textContent = "";
    this.text.value = "";
    try {
      await this.client.send(this.chat, text);
    } catch (err) {
      // Put the text back so nothing the customer wrote is lost.
      if (this.text.value === "") this.text.value = text;
      this.fail(this.chatError, err);
    }
  }

  private typing(): void {
    const now = Date.now();
    if (this.chat === null || this.client === null || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.client.typing(this.chat);
  }

  private async end(): Promise<void> {
    if (this.chat === null || this.client === null) return;
    try {
      await this.client.leave(this.chat);
    } catch (err) {
      this.fail(this.chatError, err);
    }
  }

  private async returnToChat(): Promise<void> {
    if (this.chat === null || this.client === null) return;
    this.chatError.textContent = "";
    this.returnButton.disabled = true;
    try {
      // The Reopened event that follows opens the chat again.
      await this.client.returnToChat(this.chat);
    } catch (err) {
      if (err instanceof HubError && err.code === "NotReturnable") {
        this.returnButton.hidden = true;
        this.chatError.textContent = "This chat can no longer be reopened. Start a new one instead.";
      } else {
        this.fail(this.chatError, err);
      }
    } finally {
      this.returnButton.disabled = false;
    }
  }

  private startOver(): void {
    this.chat = null;
    this.log.replaceChildren();
    this.messages.clear();
    this.show(this.startView);
  }

  private fail(where: HTMLElement, err: unknown): void {
    where.textContent =
      err instanceof HubError
        ? err.code === "RateLimited"
          ? "Slow down a little, please."
          : `Sorry, that did not work (${err.code}).`
        : "The chat cannot be reached right now. Please try again.";
  }
}
