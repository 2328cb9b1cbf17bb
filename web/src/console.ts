// The agent console, served by the hub at /console: sign in with the
// agent's token, go Present or Absent, watch each channel's badge and
// incoming list, get an alert popup for unanswered chats while Present,
// answer a push channel's offers (accept or decline, before their time
// runs out), take chats (get next, or pick one) and hold several side by side, each
// with its transcript, quick replies by `/shortcut`, files, transfer,
// ticket and end; recent sessions, and the contact panel of the chat in
// focus. Plain DOM, no framework; the SDK's AgentClient does the talking,
// reconnecting and resuming.

import { AgentClient, type Status } from "./agent.js";
import type { ClientEvent } from "./client.js";
import { HubError } from "./errors.js";
import type { Alert, Assignment, ChatEvent, ChatId, Customer, FileRef, KnowledgeItem, OfferEnd, Party, QueueRow, QueueUpdate } from "./frames.js";
import { Offers, type StandingOffer, secondsLeft } from "./offers.js";
import { type Made, Panels } from "./panels.js";

/** Where the sign-in is kept: this tab's sessionStorage only. */
const STORAGE_KEY = "chathub-console";
/** The longest message the form takes (the hub's own limit is higher). */
const MAX_TEXT = 4000;
/** How often a typing agent says so, in ms. */
const TYPING_EVERY_MS = 2000;
/** How long a customer's typing indicator shows, in ms. */
const TYPING_SHOWN_MS = 4000;
/** Rows of recent sessions shown. */
const RECENT_ROWS = 10;
/** Quick replies offered at once while typing a shortcut. */
const SUGGESTIONS = 5;
/** Pages of transcript a panel made again loads at most. */
const HISTORY_PAGES = 100;
/** How often the offers' countdowns are brought up to date, in ms. */
const OFFER_TICK_MS = 250;

type Attrs = Record<string, string | boolean>;

/** An element with attributes (`true` for a bare one) and children. */
function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === true) node.setAttribute(name, "");
    else if (value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** A labelled control. */
function field(label: string, control: HTMLElement): HTMLLabelElement {
  return el("label", {}, el("span", {}, label), control);
}

function who(customer: Customer): string {
  return customer.name ?? customer.email ?? "A customer";
}

function time(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function describe(err: unknown): string {
  if (err instanceof HubError) {
    switch (err.code) {
      case "QueueEmpty":
        return "Nobody is waiting there.";
      case "ChatAlreadyTaken":
        return "Someone else took that chat first.";
      case "NotOffered":
        return "That offer no longer stands.";
      case "ChatEnded":
        return "The customer has left.";
      case "AtCapacity":
        return "You hold as many chats as you may.";
      case "UnknownItem":
        return "No quick reply has that shortcut.";
      case "Unauthorized":
        return "That agent id and token do not sign in.";
      default:
        return `That did not work (${err.code}).`;
    }
  }
  return "The hub cannot be reached right now.";
}

interface SignIn {
  agent: string;
  token: string;
}

function loadSignIn(): SignIn | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as SignIn | null;
    return stored !== null && typeof stored.agent === "string" && typeof stored.token === "string" ? stored : null;
  } catch {
    return null;
  }
}

function storeSignIn(signIn: SignIn | null): void {
  try {
    if (signIn === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(signIn));
  } catch {
    // Storage refused: the sign-in lasts as long as the page.
  }
}

/** One channel: its badge, incoming list and get-next button. */
class ChannelView {
  readonly rows = new Map<ChatId, QueueRow>();
  waiting = 0;
  readonly badge = el("span", { class: "badge", "aria-label": "waiting" }, "0");
  readonly list = el("ul", { class: "incoming", "aria-label": "" });
  readonly next = el("button", { class: "next primary", type: "button" }, "Get next");
  readonly root: HTMLElement;

  constructor(
    readonly name: string,
    private readonly pick: (chat: ChatId) => void,
  ) {
    this.list.setAttribute("aria-label", `Waiting on ${name}`);
    this.next.setAttribute("aria-label", `Get the next chat of ${name}`);
    this.root = el(
      "section",
      { class: "channel", "data-channel": name, "aria-label": `Channel ${name}` },
      el("h3", {}, name, " ", this.badge),
      this.next,
      this.list,
    );
  }

  apply(update: QueueUpdate): void {
    const change = update.change;
    if (change.type === "Snapshot") {
      this.rows.clear();
      for (const row of change.rows) this.rows.set(row.chat, row);
    } else if (change.type === "Added" || change.type === "Changed") {
      this.rows.set(change.row.chat, change.row);
    } else {
      this.rows.delete(change.chat);
    }
    this.waiting = update.waiting;
    this.render();
  }

  private render(): void {
    this.badge.textContent = String(this.waiting);
    this.badge.setAttribute("aria-label", `${this.waiting} waiting`);
    this.badge.classList.toggle("none", this.waiting === 0);
    const rows = [...this.rows.values()].sort((a, b) => a.since - b.since);
    this.list.replaceChildren(
      ...rows.map((row) => {
        const pick = el("button", { class: "pick secondary", type: "button", "aria-label": `Pick the chat of ${who(row.customer)}` }, "Pick");
        pick.addEventListener("click", () => this.pick(row.chat));
        return el(
          "li",
          { "data-chat": String(row.chat) },
          el("strong", {}, who(row.customer)),
          row.priority !== null && row.priority !== "Normal" ? el("span", { class: "priority" }, ` ${row.priority}`) : "",
          el("span", { class: "since" }, ` since ${time(row.since)}`),
          el("q", {}, row.firstMessage),
          pick,
        );
      }),
    );
  }
}

/** What an offer said when it went, for a screen reader. */
function offerNews(offer: StandingOffer, reason: OfferEnd | "Ran out"): string {
  const name = who(offer.row.customer);
  switch (reason) {
    case "Accepted":
      return `You took the chat of ${name}.`;
    case "Taken":
      return `Another agent took the chat of ${name}.`;
    case "Expired":
    case "Ran out":
      return `The offer of the chat of ${name} ran out.`;
    case "Declined":
      return `You declined the chat of ${name}.`;
    case "Left":
      return `${name} left before the chat was answered.`;
    case "Withdrawn":
      return `The offer of the chat of ${name} was withdrawn.`;
  }
}

/**
 * One offer standing: the customer and their first message, the time left
 * to answer, and Accept and Decline. A dialog of its own, announced as
 * the alert popup is.
 */
class OfferView {
  readonly accept = el("button", { class: "accept primary", type: "button" }, "Accept");
  readonly decline = el("button", { class: "decline secondary", type: "button" }, "Decline");
  /** The countdown: a timer, which screen readers do not read out each second. */
  private readonly left = el("p", { class: "left", role: "timer" });
  private readonly bar = el("span", { class: "bar" });
  readonly root: HTMLElement;
  /** The offer's whole time, for the bar. */
  private readonly total: number;

  constructor(
    public offer: StandingOffer,
    now: number,
    answer: (chat: ChatId, accept: boolean) => void,
  ) {
    const id = `offer-${offer.chat}`;
    const name = who(offer.row.customer);
    this.left.id = `${id}-left`;
    this.total = Math.max(1, offer.expiresAt - now);
    this.accept.setAttribute("aria-label", `Accept the chat of ${name}`);
    this.decline.setAttribute("aria-label", `Decline the chat of ${name}`);
    this.root = el(
      "section",
      {
        class: "offer",
        role: "alertdialog",
        "aria-labelledby": `${id}-title`,
        "aria-describedby": `${id}-text ${id}-left`,
        "data-chat": String(offer.chat),
      },
      el("h2", { id: `${id}-title` }, `A chat for you on ${offer.row.channel}`),
      el("p", { id: `${id}-text`, class: "what" }, el("strong", {}, name), `: “${offer.row.firstMessage}”`),
      el("div", { class: "time", "aria-hidden": "true" }, this.bar),
      this.left,
      el("div", { class: "row" }, this.accept, this.decline),
    );
    this.accept.addEventListener("click", () => answer(offer.chat, true));
    this.decline.addEventListener("click", () => answer(offer.chat, false));
    this.tick(now);
  }

  /** Brings the countdown and the buttons up to date. */
  tick(now: number): void {
    const seconds = secondsLeft(this.offer.expiresAt, now);
    this.left.textContent = `${seconds} s left to answer`;
    const share = Math.min(1, Math.max(0, (this.offer.expiresAt - now) / this.total));
    this.bar.style.width = `${(share * 100).toFixed(1)}%`;
    // Not `disabled`: that would drop the keyboard focus while the
    // answer is under way (a second press is ignored instead).
    this.accept.setAttribute("aria-disabled", String(this.offer.answering));
    this.decline.setAttribute("aria-disabled", String(this.offer.answering));
  }
}

/** What a chat panel asks of the console. */
interface ChatHost {
  client: AgentClient;
  me: string;
  quickReplies(): KnowledgeItem[];
  focused(view: ChatView): void;
  closed(view: ChatView): void;
  ended(view: ChatView): void;
}

/** One chat held: transcript, compose, and its tools. */
class ChatView {
  customer: Customer = { name: null, email: null };
  channel = "";
  private open = true;
  private lastTyping = 0;
  /** The seqs shown (or passed over), so an event is never shown twice. */
  private readonly seen = new Set<number>();
  /** While the transcript so far loads: the live events, shown after it. */
  private held: ChatEvent[] | null = null;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;

  private readonly title = el("h3", { id: "" });
  private readonly log = el("ol", { class: "log", role: "log", "aria-live": "polite" });
  private readonly status = el("p", { class: "status", role: "status" });
  private readonly text = el("textarea", { name: "text", rows: "2", maxlength: String(MAX_TEXT), required: true });
  private readonly suggest = el("ul", { class: "suggest", role: "listbox", hidden: true });
  private readonly compose = el("form", { class: "compose" });
  private readonly error = el("p", { class: "error", role: "alert" });
  private readonly tools = el("div", { class: "tools" });
  private readonly closeButton = el("button", { class: "close secondary", type: "button", hidden: true }, "Close");
  readonly root: HTMLElement;

  constructor(
    readonly chat: ChatId,
    private readonly host: ChatHost,
  ) {
    const titleId = `chat-${chat}-title`;
    this.title.id = titleId;
    this.title.textContent = `Chat ${chat}`;
    this.log.setAttribute("aria-label", `Messages of chat ${chat}`);
    const send = el("button", { class: "primary", type: "submit" }, "Send");
    this.compose.append(field("Message (/ for quick replies)", this.text), this.suggest, send);

    const end = el("button", { class: "end secondary", type: "button" }, "End chat");
    const transferTo = el("input", { name: "to", required: true, maxlength: "200", placeholder: "alice or support" });
    const transferKind = el("select", { name: "kind" }, el("option", { value: "agent" }, "to an agent"), el("option", { value: "channel" }, "to a channel"));
    const transfer = el("form", { class: "transfer" }, field("Transfer", transferTo), field("Kind", transferKind), el("button", { class: "secondary", type: "submit" }, "Transfer"));
    const subject = el("input", { name: "subject", required: true, maxlength: "200" });
    const ticket = el("form", { class: "ticket" }, field("Ticket subject", subject), el("button", { class: "secondary", type: "submit" }, "Make ticket"));
    const file = el("input", { type: "file", name: "file" });
    this.tools.append(end, transfer, ticket, field("Share a file", file));

    this.root = el(
      "article",
      { class: "chat", "data-chat": String(chat), "aria-labelledby": titleId, tabindex: "-1" },
      el("header", {}, this.title, this.closeButton),
      this.log,
      this.status,
      this.error,
      this.compose,
      this.tools,
    );

    this.root.addEventListener("focusin", () => host.focused(this));
    this.compose.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      } else if (event.key === "Tab" && !event.shiftKey && this.expand()) {
        event.preventDefault();
      } else if (event.key === "Escape") {
        this.suggest.hidden = true;
      }
    });
    this.text.addEventListener("input", () => {
      this.suggestions();
      this.typing();
    });
    end.addEventListener("click", () => void this.act(() => host.client.endChat(chat)));
    transfer.addEventListener("submit", (event) => {
      event.preventDefault();
      const to = transferTo.value.trim();
      if (to === "") return;
      const move = transferKind.value === "channel" ? host.client.transferToChannel(chat, to) : host.client.transferToAgent(chat, to);
      void this.act(() => move).then((ok) => {
        if (ok) transferTo.value = "";
      });
    });
    ticket.addEventListener("submit", (event) => {
      event.preventDefault();
      const line = subject.value.trim();
      if (line === "") return;
      void this.act(() => host.client.createTicket(chat, line, "")).then((ok) => {
        if (ok) subject.value = "";
      });
    });
    file.addEventListener("change", () => {
      const chosen = file.files?.[0];
      if (chosen === undefined) return;
      void this.act(async () => {
        const bytes = new Uint8Array(await chosen.arrayBuffer());
        await host.client.upload(chat, chosen.name, chosen.type || "application/octet-stream", bytes);
      }).then(() => {
        file.value = "";
      });
    });
    this.closeButton.addEventListener("click", () => host.closed(this));
  }

  /** Fills in what an assignment says before the transcript arrives. */
  assigned(assignment: Assignment): void {
    this.customer = assignment.customer;
    this.channel = assignment.channel;
    this.title.textContent = `${who(assignment.customer)} · ${assignment.channel}`;
  }

  focus(): void {
    this.text.focus();
  }

  /**
   * Loads the chat's transcript so far into a panel made again (the
   * agent closed the chat's earlier panel, and the chat came back): live
   * events wait and follow it, each event once.
   */
  async history(): Promise<void> {
    this.held = [];
    const events: ChatEvent[] = [];
    try {
      let after = 0;
      for (let pages = 0; pages < HISTORY_PAGES; pages++) {
        const page = await this.host.client.transcript(this.chat, after);
        events.push(...page.events);
        const last = page.events[page.events.length - 1];
        if (!page.more || last === undefined) break;
        after = last.seq;
      }
    } catch (err) {
      this.error.textContent = describe(err);
    }
    const held = this.held;
    this.held = null;
    for (const event of [...events, ...held].sort((a, b) => a.seq - b.seq)) this.render(event);
  }

  /** Adds one event of the chat, in seq order, once. */
  render(event: ChatEvent): void {
    if (this.held !== null) {
      this.held.push(event);
      return;
    }
    if (this.seen.has(event.seq)) return;
    this.seen.add(event.seq);
    const kind = event.kind;
    switch (kind.type) {
      case "Started":
        this.customer = kind.customer;
        this.channel = kind.channel;
        this.title.textContent = `${who(kind.customer)} · ${kind.channel}`;
        this.line(event, `${who(kind.customer)} started the chat on ${kind.channel}`);
        break;
      case "Message":
        this.line(event, kind.text, kind.from);
        break;
      case "Note":
        this.line(event, `Note: ${kind.text}`, { type: "Agent", agent: kind.by });
        break;
      case "Assigned":
        this.line(event, `${kind.agent} joined`);
        break;
      case "TransferredToAgent":
        this.line(event, `${kind.from} transferred the chat to ${kind.to}`);
        if (kind.to !== this.host.me) this.over("The chat is with another agent now.");
        break;
      case "Requeued":
        this.line(event, `Back in the queue of ${kind.channel}`);
        this.over("The chat went back to a queue.");
        break;
      case "TransferDeclined":
        this.line(event, `${kind.by} declined the transfer`);
        break;
      case "TicketCreated":
        this.line(event, `Ticket ${kind.ticket} made: ${kind.subject}`);
        break;
      case "FileShared":
        this.fileLine(event, kind.file, kind.from);
        break;
      case "Reopened":
        this.line(event, "The customer came back to the chat");
        this.reopen();
        break;
      case "Ended":
        this.line(event, kind.by.type === "Customer" ? "The customer ended the chat" : "The chat has ended");
        this.over("The chat has ended.");
        this.host.ended(this);
        break;
      case "Verified":
        this.line(event, `Verified as ${kind.identity.id}`);
        break;
      case "SupervisorJoined":
        this.line(event, `${kind.supervisor} (supervisor) joined`);
        break;
      case "SupervisorLeft":
        this.line(event, `${kind.supervisor} (supervisor) left`);
        break;
      case "Reassigned":
        this.line(event, `${kind.by} (supervisor) moved the chat from ${kind.from} to ${kind.to}`);
        break;
      default:
        // Read marks, priorities and the like show nothing.
        break;
    }
  }

  /** The customer is typing. */
  typingSeen(): void {
    this.status.textContent = `${who(this.customer)} is typing…`;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => {
      this.status.textContent = "";
    }, TYPING_SHOWN_MS);
  }

  private line(event: ChatEvent, text: string, from?: Party): HTMLLIElement {
    const mine = from?.type === "Agent" && from.agent === this.host.me;
    const cls = from === undefined || from.type === "System" ? "system" : from.type === "Customer" ? "customer" : mine ? "me" : "agent";
    const item = el("li", { class: cls, "data-seq": String(event.seq) });
    if (from?.type === "Customer") item.append(el("span", { class: "who" }, who(this.customer)));
    else if (from?.type === "Agent") item.append(el("span", { class: "who" }, mine ? "You" : from.agent));
    item.append(text);
    this.log.append(item);
    this.log.scrollTop = this.log.scrollHeight;
    return item;
  }

  private fileLine(event: ChatEvent, file: FileRef, from: Party): void {
    const item = this.line(event, `shared ${file.name} (${Math.max(1, Math.round(file.size / 1024))} KiB) `, from);
    const get = el("button", { class: "download secondary", type: "button", "data-file": String(file.id) }, `Download ${file.name}`);
    get.addEventListener("click", () =>
      void this.act(async () => {
        const { file: found, bytes } = await this.host.client.download(file.id);
        const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: found.contentType }));
        const link = el("a", { href: url, download: found.name });
        link.click();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      }),
    );
    item.append(get);
  }

  private over(note: string): void {
    this.open = false;
    this.text.disabled = true;
    this.compose.hidden = true;
    this.tools.hidden = true;
    this.status.textContent = note;
    this.closeButton.hidden = false;
  }

  private reopen(): void {
    this.open = true;
    this.text.disabled = false;
    this.compose.hidden = false;
    this.tools.hidden = false;
    this.status.textContent = "";
    this.closeButton.hidden = true;
  }

  /** The quick replies whose shortcut starts with what is typed. */
  private matches(): KnowledgeItem[] {
    const typed = this.text.value.trim();
    if (!typed.startsWith("/") || typed.includes(" ")) return [];
    return this.host.quickReplies().filter((item) => item.shortcut !== null && item.shortcut.startsWith(typed));
  }

  private suggestions(): void {
    const found = this.matches().slice(0, SUGGESTIONS);
    this.suggest.hidden = found.length === 0;
    this.suggest.replaceChildren(
      ...found.map((item) => el("li", { role: "option" }, el("strong", {}, item.shortcut ?? ""), ` ${item.title}: `, el("span", {}, item.body))),
    );
  }

  /** Tab completes a shortcut typed in part; true if it did. */
  private expand(): boolean {
    const [only] = this.matches();
    if (only === undefined || only.shortcut === null || this.matches().length !== 1 || this.text.value.trim() === only.shortcut) return false;
    this.text.value = only.shortcut;
    this.suggestions();
    return true;
  }

  private async send(): Promise<void> {
    const text = this.text.value.trim();
    if (text === "" || !this.open) return;
    this.error.textContent = "";
    this.text.value = "";
    this.suggest.hidden = true;
    const quick = this.host.quickReplies().find((item) => item.shortcut === text);
    try {
      // A quick reply goes by its shortcut: the hub fills in its
      // placeholders ({customer.name}, {agent.name}).
      if (quick !== undefined) await this.host.client.insert(this.chat, { type: "Shortcut", shortcut: text });
      else await this.host.client.send(this.chat, text);
    } catch (err) {
      if (this.text.value === "") this.text.value = text;
      this.error.textContent = describe(err);
    }
  }

  private typing(): void {
    const now = Date.now();
    if (!this.open || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.host.client.typing(this.chat);
  }

  /** Runs a request of this chat, showing its refusal; true if it worked. */
  private async act(run: () => Promise<unknown>): Promise<boolean> {
    this.error.textContent = "";
    try {
      await run();
      return true;
    } catch (err) {
      this.error.textContent = describe(err);
      return false;
    }
  }
}

/** The console: sign-in, then the agent's desk. */
class Console implements ChatHost {
  client!: AgentClient;
  me = "";
  private status: Status = "Absent";
  private items: KnowledgeItem[] = [];
  private readonly channels = new Map<string, ChannelView>();
  private readonly chats = new Panels<ChatView>((chat, made) => this.makeView(chat, made));
  private readonly alerts = new Map<ChatId, Alert>();
  private readonly dismissed = new Set<ChatId>();
  private readonly offers = new Offers();
  private readonly offerViews = new Map<ChatId, OfferView>();
  private offerTimer: ReturnType<typeof setInterval> | undefined;
  private selected: ChatView | null = null;

  // Sign-in.
  private readonly agentInput = el("input", { name: "agent", required: true, autocomplete: "username", maxlength: "200" });
  private readonly tokenInput = el("input", { name: "token", type: "password", required: true, autocomplete: "current-password" });
  private readonly signInButton = el("button", { class: "primary", type: "submit" }, "Sign in");
  private readonly signInError = el("p", { class: "error", role: "alert" });
  private readonly signInView = el("form", { class: "signin", "aria-label": "Sign in" });

  // The desk.
  private readonly who = el("span", { class: "me" });
  private readonly presence = el("button", { class: "presence", type: "button", "aria-pressed": "false" }, "Absent");
  private readonly signOut = el("button", { class: "signout secondary", type: "button" }, "Sign out");
  private readonly error = el("p", { class: "error", role: "alert" });
  private readonly channelList = el("div", { class: "channels" });
  private readonly recentList = el("ol", { class: "recent-list" });
  private readonly chatArea = el("div", { class: "chats", "aria-label": "Your chats" });
  private readonly noChats = el("p", { class: "empty" }, "No chats yet: get the next one, or pick one from a list.");
  private readonly contact = el("div", { class: "contact-body" }, el("p", { class: "empty" }, "Select a chat to see its contact."));
  private readonly deskView = el("div", { class: "desk", hidden: true });

  // The alert popup.
  private readonly alertText = el("p", { id: "alert-text" });
  private readonly alertPick = el("button", { class: "pick primary", type: "button" }, "Take this chat");
  private readonly alertDismiss = el("button", { class: "dismiss secondary", type: "button" }, "Dismiss");
  private readonly alertBox = el(
    "div",
    { class: "alert", role: "alertdialog", "aria-labelledby": "alert-title", "aria-describedby": "alert-text", hidden: true },
    el("h2", { id: "alert-title" }, "A customer is waiting"),
    this.alertText,
    el("div", { class: "row" }, this.alertPick, this.alertDismiss),
  );

  // Offers of push channels, above the alert popup.
  private readonly offerBox = el("div", { class: "offers" });
  /** What became of an offer that went, for screen readers. */
  private readonly offerStatus = el("p", { class: "offer-status sr-only", role: "status" });
  private readonly popups = el("div", { class: "popups" }, this.offerBox, this.alertBox);

  constructor(
    private readonly hub: string,
    private readonly hashesUrl: string | null,
    root: HTMLElement,
  ) {
    this.signInView.append(
      el("h1", {}, "Agent console"),
      field("Agent id", this.agentInput),
      field("Token", this.tokenInput),
      this.signInError,
      this.signInButton,
    );
    const refresh = el("button", { class: "refresh secondary", type: "button" }, "Refresh");
    this.deskView.append(
      el("header", { class: "top" }, el("h1", {}, "Agent console"), this.who, this.presence, this.signOut),
      this.error,
      el(
        "div",
        { class: "grid" },
        el(
          "nav",
          { class: "side", "aria-label": "Channels and recent sessions" },
          el("h2", {}, "Incoming"),
          this.channelList,
          el("section", { class: "recent", "aria-label": "Recent sessions" }, el("h2", {}, "Recent sessions ", refresh), this.recentList),
        ),
        el("main", { class: "main" }, el("h2", { class: "sr-only" }, "Your chats"), this.noChats, this.chatArea),
        el("aside", { class: "contact", "aria-label": "Contact" }, el("h2", {}, "Contact"), this.contact),
      ),
    );
    root.append(this.signInView, this.deskView, this.popups, this.offerStatus);

    this.signInView.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.signIn({ agent: this.agentInput.value.trim(), token: this.tokenInput.value });
    });
    this.presence.addEventListener("click", () => void this.setStatus(this.status === "Present" ? "Absent" : "Present"));
    this.signOut.addEventListener("click", () => {
      storeSignIn(null);
      this.client.close();
      location.reload();
    });
    refresh.addEventListener("click", () => void this.recent());
    this.alertPick.addEventListener("click", () => {
      const alert = this.shownAlert();
      if (alert !== undefined) void this.take(() => this.client.pick(alert.row.chat));
    });
    this.alertDismiss.addEventListener("click", () => {
      const alert = this.shownAlert();
      if (alert !== undefined) this.dismissed.add(alert.row.chat);
      this.renderAlert();
    });
    this.alertBox.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.alertDismiss.click();
    });

    const stored = loadSignIn();
    if (stored !== null) void this.signIn(stored);
    else this.agentInput.focus();
  }

  quickReplies(): KnowledgeItem[] {
    return this.items;
  }

  focused(view: ChatView): void {
    if (this.selected === view) return;
    this.selected = view;
    for (const each of this.chats.values()) each.root.classList.toggle("selected", each === view);
    void this.showContact(view);
  }

  closed(view: ChatView): void {
    this.chats.close(view.chat);
    view.root.remove();
    if (this.selected === view) this.selected = null;
    this.noChats.hidden = this.chats.size > 0;
  }

  ended(_view: ChatView): void {
    void this.recent();
  }

  private async signIn(signIn: SignIn): Promise<void> {
    if (signIn.agent === "" || signIn.token === "") return;
    this.signInButton.disabled = true;
    this.signInError.textContent = "";
    try {
      // The hashes are read again before every reconnect: the hub
      // replaces its certificate before it expires.
      const hashesUrl = this.hashesUrl ?? undefined;
      this.client = await AgentClient.connect(this.hub, signIn.agent, signIn.token, { hashesUrl, backoffMs: 100, maxBackoffMs: 2000 });
    } catch (err) {
      storeSignIn(null);
      this.signInError.textContent = describe(err);
      this.signInButton.disabled = false;
      this.tokenInput.focus();
      return;
    }
    storeSignIn(signIn);
    this.tokenInput.value = "";
    const profile = this.client.profile;
    this.me = profile.id;
    this.who.textContent = `${profile.name} (${profile.id})`;
    for (const name of profile.channels) {
      const view = new ChannelView(name, (chat) => void this.take(() => this.client.pick(chat)));
      view.next.addEventListener("click", () => void this.take(() => this.client.getNext(name)));
      this.channels.set(name, view);
      this.channelList.append(view.root);
    }
    this.showStatus(profile.status);
    this.signInView.hidden = true;
    this.deskView.hidden = false;
    this.presence.focus();
    void this.pump();
    void this.recent();
    this.client.items("QuickReply").then(
      (items) => {
        this.items = items;
      },
      () => {},
    );
  }

  private async pump(): Promise<void> {
    for await (const event of this.client) this.handle(event);
    this.error.textContent = "Signed out: the hub closed the connection.";
  }

  private handle(event: ClientEvent): void {
    switch (event.type) {
      case "Chat":
        // Made on the chat's first event, which may come before the
        // answer of the get next, pick or accept that took it (panels.ts).
        this.chats.forEvent(event.event, this.me)?.render(event.event);
        if (this.offers.chatEvent(event.event) !== null) this.renderOffers();
        break;
      case "Typing":
        if (event.from.type === "Customer") this.chats.get(event.chat)?.typingSeen();
        break;
      case "Queue":
        this.channels.get(event.update.channel)?.apply(event.update);
        break;
      case "Alert":
        this.alerts.set(event.alert.row.chat, event.alert);
        this.renderAlert();
        break;
      case "AlertCleared":
        this.alerts.delete(event.chat);
        this.dismissed.delete(event.chat);
        this.renderAlert();
        break;
      case "StatusChanged":
        this.client.statusSetElsewhere(event.status);
        this.showStatus(event.status);
        break;
      case "Offered":
        this.offers.offered(event.offer, event.expiresAt);
        this.renderOffers();
        break;
      case "OfferWithdrawn": {
        const gone = this.offers.withdrawn(event.chat);
        if (gone !== null) {
          this.offerStatus.textContent = offerNews(gone, event.reason);
          this.renderOffers();
        }
        break;
      }
      case "QueuePosition":
        break;
    }
  }

  /**
   * Accepts or declines the offer of `chat`. An accepted chat opens in its
   * panel as a get next does (its events may come before the answer or
   * after it); an answer that finds the offer over takes it away.
   */
  private async answerOffer(chat: ChatId, accept: boolean): Promise<void> {
    if (!this.offers.answering(chat)) return;
    this.renderOffers();
    let err: unknown = null;
    if (accept) {
      err = await this.take(() => this.client.accept(chat));
    } else {
      this.error.textContent = "";
      try {
        await this.client.decline(chat);
      } catch (refused) {
        err = refused;
        this.error.textContent = describe(refused);
      }
    }
    const offer = this.offers.get(chat);
    if (this.offers.answered(chat, err) && offer !== undefined) {
      this.offerStatus.textContent = offerNews(offer, err === null ? (accept ? "Accepted" : "Declined") : "Withdrawn");
    }
    this.renderOffers();
  }

  /**
   * Shows the offers standing, the one that runs out first on top, and
   * keeps their countdowns going while any stands. A new offer takes the
   * focus unless the agent is writing or answering another; one that goes
   * while it holds the focus hands it on.
   */
  private renderOffers(): void {
    const now = Date.now();
    for (const offer of this.offers.expire(now)) this.offerStatus.textContent = offerNews(offer, "Ran out");
    const standing = this.offers.list();
    const active = document.activeElement;
    let changed = false;
    let focusLost = false;
    for (const [chat, view] of this.offerViews) {
      if (this.offers.has(chat)) continue;
      if (active !== null && view.root.contains(active)) focusLost = true;
      view.root.remove();
      this.offerViews.delete(chat);
      changed = true;
    }
    let fresh: OfferView | null = null;
    for (const offer of standing) {
      let view = this.offerViews.get(offer.chat);
      if (view === undefined) {
        view = new OfferView(offer, now, (chat, accept) => void this.answerOffer(chat, accept));
        this.offerViews.set(offer.chat, view);
        fresh ??= view;
        changed = true;
      }
      // Told again after a reconnect: the same view, the new deadline.
      view.offer = offer;
      view.tick(now);
    }
    // Moved only when out of order: a node moved loses the focus.
    const wanted = standing.map((offer) => this.offerViews.get(offer.chat)!.root);
    if (!wanted.every((node, i) => this.offerBox.children[i] === node)) this.offerBox.replaceChildren(...wanted);
    if (standing.length > 0 && this.offerTimer === undefined) {
      this.offerTimer = setInterval(() => this.renderOffers(), OFFER_TICK_MS);
    } else if (standing.length === 0 && this.offerTimer !== undefined) {
      clearInterval(this.offerTimer);
      this.offerTimer = undefined;
    }
    if (!changed) return;
    // An offered chat's alert would ask the same: the offer stands for it.
    this.renderAlert();
    const writing = active instanceof HTMLTextAreaElement || active instanceof HTMLInputElement;
    const first = standing[0] === undefined ? undefined : this.offerViews.get(standing[0].chat);
    if (focusLost) (first?.accept ?? this.presence).focus();
    else if (fresh !== null && !writing && !(active !== null && this.offerBox.contains(active))) fresh.accept.focus();
  }

  /** A chat's panel, on the page; one made again first loads what it missed. */
  private makeView(chat: ChatId, made: Made): ChatView {
    const view = new ChatView(chat, this);
    this.chatArea.append(view.root);
    this.noChats.hidden = true;
    if (made === "again") void view.history();
    return view;
  }

  /** Takes a chat (get next, pick, accept) into its panel; answers the refusal, or `null`. */
  private async take(ask: () => Promise<Assignment>): Promise<unknown> {
    this.error.textContent = "";
    try {
      const assignment = await ask();
      this.alerts.delete(assignment.chat);
      this.renderAlert();
      const view = this.chats.forAnswer(assignment.chat);
      view.assigned(assignment);
      view.focus();
      return null;
    } catch (err) {
      this.error.textContent = describe(err);
      return err;
    }
  }

  private async setStatus(status: Status): Promise<void> {
    this.error.textContent = "";
    try {
      await this.client.setStatus(status);
      this.showStatus(status);
    } catch (err) {
      this.error.textContent = describe(err);
    }
  }

  private showStatus(status: Status): void {
    this.status = status;
    this.presence.textContent = status;
    this.presence.setAttribute("aria-pressed", String(status === "Present"));
    this.presence.setAttribute("aria-label", `Status: ${status}. Press to go ${status === "Present" ? "Absent" : "Present"}.`);
    this.presence.classList.toggle("present", status === "Present");
    this.renderAlert();
  }

  /** The alert the popup shows: the longest-waiting one not dismissed nor offered to this agent. */
  private shownAlert(): Alert | undefined {
    return [...this.alerts.values()]
      .filter((alert) => !this.dismissed.has(alert.row.chat) && !this.offers.has(alert.row.chat))
      .sort((a, b) => a.row.since - b.row.since)[0];
  }

  /** The popup shows only while this agent is Present. */
  private renderAlert(): void {
    const alert = this.status === "Present" ? this.shownAlert() : undefined;
    const wasHidden = this.alertBox.hidden;
    this.alertBox.hidden = alert === undefined;
    if (alert === undefined) return;
    this.alertBox.dataset.chat = String(alert.row.chat);
    this.alertText.textContent = `${who(alert.row.customer)} has waited on ${alert.row.channel} since ${time(alert.row.since)}: “${alert.row.firstMessage}”`;
    // The popup takes the focus unless the agent is writing.
    const active = document.activeElement;
    if (wasHidden && !(active instanceof HTMLTextAreaElement || active instanceof HTMLInputElement)) this.alertPick.focus();
  }

  private async recent(): Promise<void> {
    try {
      const rows = await this.client.recentSessions(null, RECENT_ROWS);
      this.recentList.replaceChildren(
        ...rows.map(({ session, rating }) =>
          el(
            "li",
            { "data-chat": String(session.chat) },
            el("strong", {}, who(session.customer)),
            ` · ${session.channel} · ${time(session.ended)}`,
            session.agent === null ? "" : ` · ${session.agent}`,
            rating === null ? "" : el("span", { class: "rating", "aria-label": `rated ${rating.rating} of 5` }, ` ${"★".repeat(rating.rating)}`),
          ),
        ),
      );
      if (rows.length === 0) this.recentList.replaceChildren(el("li", { class: "empty" }, "No ended chats yet."));
    } catch {
      // Shown again on the next end or refresh.
    }
  }

  private async showContact(view: ChatView): Promise<void> {
    const { email, name } = view.customer;
    if (email === null && name === null) {
      this.contact.replaceChildren(el("p", { class: "empty" }, "The customer gave no name or email."));
      return;
    }
    try {
      const card = await this.client.contact(email, email === null ? name : null);
      if (this.selected !== view) return;
      this.contact.replaceChildren(
        el("p", { class: "key" }, el("strong", {}, who(view.customer)), ` (${card.key})`),
        el("p", {}, `First contact ${card.firstContact === null ? "now" : new Date(card.firstContact).toLocaleString()}`),
        el("h3", {}, `Chats (${card.chats.length})`),
        el(
          "ul",
          { class: "contact-chats" },
          ...card.chats.map((chat) =>
            el(
              "li",
              {},
              `${new Date(chat.started).toLocaleDateString()} · ${chat.channel}`,
              chat.agent === null ? "" : ` · ${chat.agent}`,
              chat.ended === null ? " · open" : "",
              chat.rating === null ? "" : ` · ${"★".repeat(chat.rating.rating)}`,
            ),
          ),
        ),
        el("h3", {}, `Tickets (${card.tickets.length})`),
        el("ul", { class: "contact-tickets" }, ...card.tickets.map((ticket) => el("li", {}, `#${ticket.id} ${ticket.subject}`))),
      );
    } catch (err) {
      this.contact.replaceChildren(el("p", { class: "error" }, describe(err)));
    }
  }
}

const STYLE = `
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #1d1d1f; background: #f5f5f7; }
[hidden] { display: none !important; }
button, input, select, textarea { font: inherit; }
button { cursor: pointer; }
:focus-visible { outline: 3px solid #f9ab00; outline-offset: 2px; }
.primary { border: 0; border-radius: 0.4rem; padding: 0.4rem 0.8rem; background: #0b57d0; color: #fff; font-weight: 600; }
.secondary { border: 1px solid #8e8e93; border-radius: 0.4rem; padding: 0.3rem 0.6rem; background: #fff; }
button:disabled, button[aria-disabled=true] { opacity: 0.6; cursor: default; }
label { display: flex; flex-direction: column; gap: 0.15rem; font-size: 0.85rem; }
input, textarea, select { border: 1px solid #8e8e93; border-radius: 0.4rem; padding: 0.35rem; }
.error { color: #b3261e; margin: 0.3rem 0; font-size: 0.9rem; }
.empty { color: #545458; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.signin { max-width: 22rem; margin: 4rem auto; display: flex; flex-direction: column; gap: 0.7rem; background: #fff;
  padding: 1.5rem; border-radius: 0.75rem; box-shadow: 0 2px 10px rgb(0 0 0 / 0.1); }
.top { display: flex; align-items: center; gap: 1rem; padding: 0.5rem 1rem; background: #0b57d0; color: #fff; }
.top h1 { font-size: 1.1rem; margin: 0; flex: 1; }
.presence { border: 2px solid #fff; border-radius: 1rem; padding: 0.25rem 0.9rem; background: #5f6368; color: #fff; font-weight: 600; }
.presence.present { background: #188038; }
.grid { display: grid; grid-template-columns: 16rem 1fr 15rem; gap: 0.8rem; padding: 0.8rem; align-items: start; }
.side, .contact { background: #fff; border-radius: 0.6rem; padding: 0.6rem 0.8rem; }
h2 { font-size: 1rem; margin: 0.2rem 0 0.5rem; }
h3 { font-size: 0.95rem; margin: 0.4rem 0; }
.channel { border-bottom: 1px solid #e5e5ea; padding-bottom: 0.5rem; margin-bottom: 0.5rem; }
.badge { display: inline-block; min-width: 1.5rem; padding: 0 0.4rem; border-radius: 1rem; background: #b3261e; color: #fff;
  text-align: center; font-size: 0.85rem; }
.badge.none { background: #8e8e93; }
.incoming, .recent-list, .contact-chats, .contact-tickets { list-style: none; margin: 0.4rem 0 0; padding: 0;
  display: flex; flex-direction: column; gap: 0.3rem; font-size: 0.85rem; }
.incoming li { display: grid; grid-template-columns: 1fr auto; gap: 0.1rem 0.4rem; padding: 0.3rem; background: #f2f2f7;
  border-radius: 0.4rem; }
.incoming q { grid-column: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.incoming .pick { grid-column: 2; grid-row: 1 / span 2; align-self: center; }
.chats { display: flex; gap: 0.8rem; overflow-x: auto; align-items: stretch; }
.chat { flex: 1 0 18rem; max-width: 28rem; background: #fff; border-radius: 0.6rem; display: flex; flex-direction: column;
  border: 2px solid transparent; }
.chat.selected { border-color: #0b57d0; }
.chat header { display: flex; justify-content: space-between; align-items: center; padding: 0.3rem 0.6rem;
  border-bottom: 1px solid #e5e5ea; }
.log { list-style: none; margin: 0; padding: 0.6rem; display: flex; flex-direction: column; gap: 0.35rem; overflow-y: auto;
  height: 18rem; }
.log li { max-width: 88%; padding: 0.35rem 0.55rem; border-radius: 0.55rem; background: #f2f2f7; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.log li.me { align-self: flex-end; background: #d3e3fd; }
.log li.agent { background: #e6f4ea; }
.log li.system { align-self: center; background: none; color: #545458; font-size: 0.8rem; text-align: center; }
.who { display: block; font-size: 0.72rem; color: #545458; }
.status { margin: 0; padding: 0 0.6rem; min-height: 1.2rem; font-size: 0.8rem; color: #545458; }
.compose { display: flex; flex-direction: column; gap: 0.3rem; padding: 0.4rem 0.6rem; border-top: 1px solid #e5e5ea; }
.compose textarea { resize: vertical; }
.suggest { list-style: none; margin: 0; padding: 0.3rem; background: #fffbe6; border: 1px solid #e0c36b; border-radius: 0.4rem;
  font-size: 0.85rem; }
.tools { display: flex; flex-wrap: wrap; gap: 0.4rem; padding: 0.4rem 0.6rem 0.6rem; align-items: flex-end; }
.tools form { display: flex; gap: 0.3rem; align-items: flex-end; }
.tools input:not([type=file]) { width: 8rem; }
.popups { position: fixed; right: 1.5rem; top: 4rem; z-index: 10; width: 22rem; display: flex; flex-direction: column;
  gap: 0.6rem; }
.offers { display: flex; flex-direction: column; gap: 0.6rem; }
.alert, .offer { background: #fff; border: 3px solid #b3261e; border-radius: 0.75rem; padding: 0.8rem 1rem;
  box-shadow: 0 6px 24px rgb(0 0 0 / 0.3); }
.offer { border-color: #0b57d0; }
.alert h2 { color: #b3261e; }
.offer h2 { color: #0b57d0; }
.offer .what { overflow-wrap: anywhere; }
.offer .time { height: 0.35rem; background: #e5e5ea; border-radius: 1rem; overflow: hidden; }
.offer .bar { display: block; height: 100%; background: #0b57d0; }
.offer .left { margin: 0.3rem 0; font-size: 0.85rem; color: #545458; }
.alert .row, .offer .row { display: flex; gap: 0.5rem; justify-content: flex-end; }
`;

/** Mounts the console into `#chathub-console`, which names the hub. */
function start(): void {
  const root = document.getElementById("chathub-console");
  if (root === null || root.dataset.hub === undefined) {
    console.error("chathub console: the page needs <div id=chathub-console data-hub=...>");
    return;
  }
  document.head.append(el("style", {}, STYLE));
  const hashes = root.dataset.hashes ?? "none";
  new Console(root.dataset.hub, hashes === "none" ? null : new URL(hashes, location.href).href, root);
}

start();
