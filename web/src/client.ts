// A connection to the hub over WebTransport (a customer's here, an
// agent's in agent.ts), with the native SDK's concepts: requests answered by id on a bidirectional control
// stream, each chat's events on a unidirectional stream of its own, typing
// indicators as datagrams, and a link that reconnects and resumes each
// chat after the last event it handed on (no gap, no duplicate).

import { ConnectionError, type ErrorCode, HubError } from "./errors.js";
import {
  type Alert,
  type AgentProfile,
  type ChannelMonitor,
  type ChatEvent,
  type ChatId,
  type ClientFrame,
  type Customer,
  FrameBuf,
  type Offer,
  type OfferEnd,
  type OfflineForm,
  PROTOCOL_VERSION,
  type Party,
  type QueuePlace,
  type QueueUpdate,
  type Reply,
  type RequestBody,
  type Resume,
  type Role,
  type ServerFrame,
  clientDatagram,
  clientFrame,
  decodePayload,
  encodeFrame,
  serverDatagram,
  serverFrame,
} from "./frames.js";
import { DecodeError, decodeValue, encodeValue } from "./bincode.js";
import { ChatOrder } from "./order.js";

/** What the application gets from {@link CustomerClient.nextEvent}. */
export type ClientEvent =
  | { type: "Chat"; event: ChatEvent }
  | { type: "Typing"; chat: ChatId; from: Party }
  /** Where the customer's waiting chat stands in its queue, when it changes. */
  | { type: "QueuePosition"; place: QueuePlace }
  /** Agents: a channel's incoming list changed. */
  | { type: "Queue"; update: QueueUpdate }
  /** Agents: a chat waits past its channel's `alert_after`. */
  | { type: "Alert"; alert: Alert }
  /** Agents: an alert is over (the chat was answered or left). */
  | { type: "AlertCleared"; channel: string; chat: ChatId }
  /** Agents: a supervisor set this agent's status. */
  | { type: "StatusChanged"; status: "Present" | "Absent" | "Away"; by: string }
  /**
   * Agents: a push channel offers this agent a waiting chat, to accept or
   * decline until `expiresAt` (this page's clock, ms since the epoch: the
   * offer's `expiresInMs` counted from when it arrived). Told again, with
   * the time left, after a reconnect.
   */
  | { type: "Offered"; offer: Offer; expiresAt: number }
  /** Agents: an offer is over, and why (accepted, taken, expired, declined, the customer left, withdrawn). */
  | { type: "OfferWithdrawn"; channel: string; chat: ChatId; reason: OfferEnd }
  /**
   * Supervisors: a picture of a channel whose monitor this client watches
   * (`AgentClient.watchMonitor`); one waiting to be taken is replaced by
   * the channel's next.
   */
  | { type: "Monitor"; monitor: ChannelMonitor }
  /** Supervisors: the hub ended this client's watch of a channel's monitor. */
  | { type: "MonitorStopped"; channel: string };

/** The answer to {@link CustomerClient.startChat}. */
export type Started = { type: "Queued"; chat: ChatId; waiting: number } | { type: "Offline"; form: OfflineForm };

/** Where a page picks its chats up after it is loaded again. */
export interface SavedChat {
  chat: ChatId;
  /** The last seq the page showed. */
  after: number;
  /** The chat's secret. */
  secret: string;
}

/** How to reach the hub. */
export interface ConnectOptions {
  /**
   * Where the hub serves its WebTransport certificate hashes (JSON
   * `{ "hashes": [hex, ...] }`: the `[web]` listener's
   * `/chathub/cert-hashes.json`), for a hub with its generated certificate.
   * Read again before every connect, the first and each reconnect, so a
   * page open while the hub replaces its certificate (before it expires,
   * or at a restart) connects again with the new one.
   */
  hashesUrl?: string;
  /**
   * The certificate hashes themselves (SHA-256 of the DER bytes, in hex),
   * or a function asked again before every connect; used when `hashesUrl`
   * is not given. Leave both out for a certificate the browser trusts.
   */
  certHash?: string | string[] | (() => string | string[] | Promise<string | string[]>);
  /** Chats to resume at once, as a page saved them from {@link CustomerClient.savedChats}. */
  resume?: SavedChat[];
  /** The first wait before a reconnect, in ms (doubling up to `maxBackoffMs`). */
  backoffMs?: number;
  /** The longest wait between reconnects, in ms. */
  maxBackoffMs?: number;
  /** Give up after this long without a connection, in ms. */
  giveUpAfterMs?: number;
}

/** Events waiting for the application before streams stop being read. */
const MAX_READY = 4096;
/** Chats one hello resumes at most (the hub's default `resume_points`). */
const RESUME_POINTS = 256;
/** How long the hub may take to welcome a connection, in ms. */
const WELCOME_TIMEOUT_MS = 15_000;
/** Requests waiting for an answer at most. */
const MAX_PENDING = 1024;

interface Pending {
  body: RequestBody;
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
  /** Answered `Elsewhere`: the hub did nothing with it, so it goes again whatever it is. */
  unsent?: boolean;
}

/** Another hub of a cluster, as a refusal with `Elsewhere` names it to a browser. */
interface Target {
  url: string;
  /** The hashes of the certificates it may present (none: one the browser trusts). */
  hashes: string[];
}

/** Redirects one connect follows at most. */
const MAX_HOPS = 3;

/** Codes of a hello's refusal that a new connection would meet again. */
const FATAL_AT_HELLO: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "Unauthorized",
  "UnsupportedVersion",
  "BadFrame",
  "InvalidRequest",
  "NotAllowed",
]);

/**
 * Where an `Elsewhere` refusal sends a browser: the hub's address, its
 * WebTransport URL and its certificates' hashes, separated by spaces (the
 * hashes by commas). `null` when it names no WebTransport URL.
 */
export function elsewhereTarget(message: string): Target | null {
  const [, url, hashes] = message.split(" ");
  if (url === undefined || !url.startsWith("https://")) return null;
  return { url, hashes: (hashes ?? "").split(",").filter((hash) => hash.length > 0) };
}

/** A live connection: the session and its control stream. */
interface Connection {
  transport: WebTransport;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  datagrams: WritableStreamDefaultWriter<Uint8Array>;
}

function hexBytes(hex: string): Uint8Array<ArrayBuffer> {
  const clean = hex.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(clean)) throw new TypeError("a certificate hash is 64 hex digits");
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function randomClientId(): bigint {
  const words = new BigUint64Array(1);
  crypto.getRandomValues(words);
  return words[0]! >> 1n;
}

function randomSecret(): string {
  const bytes = new Uint8Array(24);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Requests that may take effect twice if sent again after a lost answer
 * (`safe_to_send_again` of src/protocol/request.rs is false for these).
 */
const NOT_SAFE_AGAIN: ReadonlySet<RequestBody["type"]> = new Set<RequestBody["type"]>([
  "SubmitOfflineForm",
  "GetNext",
  "Pick",
  "TransferToAgent",
  "TransferToChannel",
  "DeclineTransfer",
  "CreateTicket",
  "AcceptOffer",
  "Reassign",
  "EditMessage",
  "DeleteMessage",
]);

/** Requests a client may send again after a lost answer (`safe_to_send_again`). */
function safeToSendAgain(body: RequestBody): boolean {
  return !NOT_SAFE_AGAIN.has(body.type);
}

/**
 * What customers and agents share: the connection and its hello, requests
 * answered by id, each chat's events in order, and reconnecting with
 * every chat resumed after the last event handed on.
 */
export class HubLink {
  private conn: Connection | null = null;
  private nextId = 1;
  /** From a random start, so a page loaded again does not repeat an id the hub still knows. */
  protected nextClientId = randomClientId();
  private readonly pending = new Map<number, Pending>();
  protected readonly order = new ChatOrder();
  private readonly ready: ClientEvent[] = [];
  private readonly waiters: ((event: ClientEvent | null) => void)[] = [];
  private readonly roomWaiters: (() => void)[] = [];
  private closedFor: Error | null = null;
  private connected: Promise<void> | null = null;
  private reconnectCount = 0;
  /** The agent profile of the last welcome (`null` for a customer). */
  protected welcomed: AgentProfile | null = null;
  /** Whether a connection was made before (the next one is a reconnect). */
  private dialled = false;
  /** The channels whose monitors an agent watches: only their pictures are handed on. */
  protected readonly monitors = new Set<string>();
  /** The hub of a cluster this client was sent to, while it serves it. */
  private target: Target | null = null;
  /** Set when a hub sent this client elsewhere: the next connect goes at once. */
  private redirected = false;

  protected constructor(
    private readonly url: string,
    protected readonly options: ConnectOptions,
    private readonly role: Role,
  ) {
    for (const saved of options.resume ?? []) this.order.remember(saved.chat, saved.secret, saved.after);
  }

  /** How often the client connected again after a lost connection. */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /** Who the client's own messages are from. */
  protected ownParty(): Party {
    return { type: "Customer" };
  }

  /**
   * Called on each new connection after the first, before requests that
   * waited are sent again: what a restarted hub forgot comes back first.
   */
  protected onReconnect(): RequestBody[] {
    return [];
  }

  /**
   * Sends a message; answers its seq. The message also comes from
   * {@link nextEvent} in its place among the chat's events.
   */
  async send(chat: ChatId, text: string): Promise<number> {
    const clientId = this.nextClientId++;
    const reply = await this.request({ type: "Post", chat, clientId, text });
    if (reply.type !== "Posted") throw unexpected(reply);
    this.deliver({ chat, seq: reply.seq, at: reply.at, kind: { type: "Message", from: this.ownParty(), clientId, text } });
    return reply.seq;
  }

  /**
   * Changes the text of the customer's own message `seq` within the
   * channel's edit window; answers the seq of the `Edited` event, which
   * also comes from {@link nextEvent} in its place among the chat's events.
   */
  async editMessage(chat: ChatId, seq: number, text: string): Promise<number> {
    const reply = await this.request({ type: "EditMessage", chat, seq, text });
    if (reply.type !== "Posted") throw unexpected(reply);
    this.deliver({ chat, seq: reply.seq, at: reply.at, kind: { type: "Edited", seq, text } });
    return reply.seq;
  }

  /** Deletes the customer's own message `seq`, as {@link editMessage} edits it. */
  async deleteMessage(chat: ChatId, seq: number): Promise<number> {
    const reply = await this.request({ type: "DeleteMessage", chat, seq });
    if (reply.type !== "Posted") throw unexpected(reply);
    this.deliver({ chat, seq: reply.seq, at: reply.at, kind: { type: "Deleted", seq } });
    return reply.seq;
  }

  /** Marks the chat read up to `upTo`; answers the mark as it stands. */
  async markRead(chat: ChatId, upTo: number): Promise<number> {
    const reply = await this.request({ type: "MarkRead", chat, upTo });
    if (reply.type !== "Read") throw unexpected(reply);
    if (reply.seq !== 0) {
      this.deliver({ chat, seq: reply.seq, at: reply.at, kind: { type: "Read", by: this.ownParty(), upTo: reply.upTo } });
    }
    return reply.upTo;
  }

  /**
   * Says the user is typing (a datagram: never stored, a lost one not
   * sent again; send one every few seconds while they type).
   */
  typing(chat: ChatId): void {
    const conn = this.conn;
    if (conn === null) return;
    conn.datagrams.write(encodeValue(clientDatagram, { type: "Typing", chat })).catch(() => {});
  }

  /**
   * The next event (each chat's in seq order, own messages among them);
   * `null` once the client is closed.
   */
  nextEvent(): Promise<ClientEvent | null> {
    const event = this.ready.shift();
    if (event !== undefined) {
      this.roomWaiters.splice(0).forEach((wake) => wake());
      return Promise.resolve(event);
    }
    if (this.closedFor !== null) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The events, as an async iterator. */
  async *[Symbol.asyncIterator](): AsyncIterator<ClientEvent> {
    for (;;) {
      const event = await this.nextEvent();
      if (event === null) return;
      yield event;
    }
  }

  /** Closes the connection; pending requests fail and the events end. */
  close(): void {
    this.shut(new ConnectionError("the client was closed"));
  }

  /**
   * A file stream of its own (a bidirectional stream beside the control
   * stream): `head` is its first frame, `body` the bytes after it; answers
   * the hub's one response and the bytes that follow it (for a download).
   */
  protected async fileStream(head: ClientFrame, body: Uint8Array | null, maxBytes: number): Promise<{ reply: Reply; bytes: Uint8Array }> {
    await this.open().catch(() => {});
    const conn = this.conn;
    if (conn === null) throw new ConnectionError("not connected");
    const stream = await conn.transport.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    // The hub stops reading once it has what it needs (a download's
    // request) or refuses an upload part way: its answer says which, so a
    // write cut short by its STOP_SENDING is not the outcome.
    const sent = (async () => {
      await writer.write(encodeFrame(clientFrame, head));
      if (body !== null) await writer.write(body);
      await writer.close();
    })();
    sent.catch(() => {});
    const reader = stream.readable.getReader();
    const frames = new FrameBuf(MAX_FRAME_HELLO);
    const frame = await readFrame(reader, frames).catch((err: unknown) => {
      throw new ConnectionError(`the file stream failed: ${String(err)}`);
    });
    if (frame === null || frame.type !== "Response") throw new ConnectionError("the file stream ended without an answer");
    const { result } = frame.response;
    if (result.type === "Err") throw new HubError(result.error.code, result.error.message);
    const chunks: Uint8Array[] = [];
    const rest = frames.buffered() > 0 ? frames.take() : null;
    let size = 0;
    if (rest !== null) {
      chunks.push(rest);
      size += rest.length;
    }
    for (;;) {
      const { value, done } = await reader.read().catch((err: unknown) => {
        throw new ConnectionError(`the file stream failed: ${String(err)}`);
      });
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new ConnectionError(`the file is over ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    return { reply: result.reply, bytes };
  }

  // --- the link -----------------------------------------------------------

  protected async request(body: RequestBody): Promise<Reply> {
    if (this.closedFor !== null) throw this.closedFor;
    if (this.pending.size >= MAX_PENDING) throw new HubError("RateLimited", "too many requests waiting for an answer");
    const id = this.nextId++;
    const answer = new Promise<Reply>((resolve, reject) => this.pending.set(id, { body, resolve, reject }));
    const conn = this.conn;
    if (conn !== null) {
      // A failed write is a lost connection: the request goes again on the next one.
      conn.writer.write(encodeFrame(clientFrame, { type: "Request", request: { id, body } })).catch(() => {});
    }
    return answer;
  }

  /** The certificate hashes to connect with, read anew for each connect. */
  private async certHashes(): Promise<WebTransportHash[] | undefined> {
    if (this.target !== null) {
      // The hub that sent this client here said what the other presents.
      const { hashes } = this.target;
      return hashes.length === 0 ? undefined : hashes.map((hex) => ({ algorithm: "sha-256", value: hexBytes(hex) }));
    }
    const { hashesUrl, certHash } = this.options;
    let hexes: string | string[];
    if (hashesUrl !== undefined) hexes = await fetchHashes(hashesUrl);
    else if (certHash === undefined) return undefined;
    else hexes = typeof certHash === "function" ? await certHash() : certHash;
    const list = typeof hexes === "string" ? [hexes] : hexes;
    if (list.length === 0) throw new ConnectionError("no certificate hash to connect with");
    return list.map((hex) => ({ algorithm: "sha-256", value: hexBytes(hex) }));
  }

  protected open(): Promise<void> {
    this.connected ??= this.dial().finally(() => {
      this.connected = null;
    });
    return this.connected;
  }

  /**
   * One connection: the session, the hello, and the readers. A hub of a
   * cluster that does not serve what the hello asks for sends the client
   * to the one that does (`hops` so far), at once.
   */
  private async dial(hops = 0): Promise<void> {
    const hashes = await this.certHashes();
    const url = this.target?.url ?? this.url;
    const transport = new WebTransport(url, hashes ? { serverCertificateHashes: hashes } : {});
    // Unreachable, a certificate that is not the one hashed, or a session
    // the hub refused (403 for a page whose origin it does not allow): the
    // browser does not say which.
    await transport.ready.catch((err: unknown) => {
      // A hub this client was sent to is gone: the next connect asks the
      // hub it was given, which knows who serves it now.
      this.target = null;
      throw new ConnectionError(`no WebTransport session with ${url}: ${String(err)}`);
    });
    const control = await transport.createBidirectionalStream();
    const writer = control.writable.getWriter();
    const reader = control.readable.getReader();
    const resume = this.order.resumePoints(RESUME_POINTS);
    await writer.write(
      encodeFrame(clientFrame, { type: "Hello", hello: { version: PROTOCOL_VERSION, role: this.role, resume } }),
    );
    const frames = new FrameBuf(MAX_FRAME_HELLO);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        transport.close();
        reject(new ConnectionError("no welcome from the hub in time"));
      }, WELCOME_TIMEOUT_MS);
    });
    const welcome = await Promise.race([readFrame(reader, frames), late]).finally(() => clearTimeout(timer));
    if (welcome === null) throw new ConnectionError("the hub closed the connection before its welcome");
    if (welcome.type === "Closing") {
      const { code, message } = welcome.error;
      const target = code === "Elsewhere" ? elsewhereTarget(message) : null;
      if (target !== null && hops < MAX_HOPS) {
        transport.close();
        this.target = target;
        return this.dial(hops + 1);
      }
      if (FATAL_AT_HELLO.has(code)) throw new HubError(code, message);
      // Served by nobody right now (a partition changing hands), or by a
      // hub this client cannot follow to: try again later.
      throw new ConnectionError(`the hub cannot serve this connection now: ${code}: ${message}`);
    }
    if (welcome.type !== "Welcome") throw new ConnectionError(`the hub's first frame was ${welcome.type}`);
    const conn: Connection = { transport, writer, datagrams: transport.datagrams.writable.getWriter() };
    const again = this.dialled;
    this.welcomed = welcome.agent;
    this.dialled = true;
    this.conn = conn;
    if (again) {
      for (const body of this.onReconnect()) {
        const id = this.nextId++;
        writer.write(encodeFrame(clientFrame, { type: "Request", request: { id, body } })).catch(() => {});
      }
    }
    // Requests that waited for a connection, or whose answer was lost:
    // sent again where that is harmless, else answered as the native SDK
    // does (they may have taken effect).
    for (const [id, pending] of [...this.pending].sort(([a], [b]) => a - b)) {
      if (pending.unsent === true || safeToSendAgain(pending.body)) {
        pending.unsent = false;
        writer.write(encodeFrame(clientFrame, { type: "Request", request: { id, body: pending.body } })).catch(() => {});
      } else {
        this.pending.delete(id);
        pending.reject(new HubError("Unavailable", "the connection was lost; the request may have taken effect"));
      }
    }
    const done = Promise.all([
      this.readControl(reader, frames),
      this.readStreams(conn),
      this.readDatagrams(transport),
    ]);
    // However the connection ends (closed by the hub, lost, a reader's
    // error), the client connects again and resumes.
    void Promise.race([done, transport.closed])
      .catch(() => {})
      .then(() => this.lost(conn));
  }

  private async readControl(reader: ReadableStreamDefaultReader<Uint8Array>, frames: FrameBuf): Promise<void> {
    for (;;) {
      const frame = await readFrame(reader, frames);
      if (frame === null) return;
      if (frame.type === "Response") {
        const { id, result } = frame.response;
        const pending = this.pending.get(id);
        if (pending === undefined) continue;
        const target = result.type === "Err" && result.error.code === "Elsewhere" ? elsewhereTarget(result.error.message) : null;
        if (target !== null) {
          // Served by another hub of the cluster: the request goes there,
          // as if never sent, on a connection made at once.
          pending.unsent = true;
          this.target = target;
          this.redirected = true;
          const conn = this.conn;
          if (conn !== null) this.lost(conn);
          return;
        }
        this.pending.delete(id);
        if (result.type === "Ok") pending.resolve(result.reply);
        else pending.reject(new HubError(result.error.code, result.error.message));
      } else if (frame.type === "Closing") {
        const { code, message } = frame.error;
        // A refusal that a new connection would meet again ends the client.
        if (code === "Unauthorized" || code === "UnsupportedVersion" || code === "BadFrame") {
          this.shut(new HubError(code, message));
        }
        return;
      }
    }
  }

  private async readStreams(conn: Connection): Promise<void> {
    const streams = conn.transport.incomingUnidirectionalStreams.getReader();
    for (;;) {
      const { value, done } = await streams.read();
      if (done) return;
      void this.readEvents(value.getReader()).catch((err) => {
        // Bytes that are not frames: this connection cannot be trusted
        // to carry the chat on; a new one resumes it. (A stream cut by a
        // lost connection is handled where the connection is.)
        if (err instanceof DecodeError) this.lost(conn);
      });
    }
  }

  private async readEvents(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    const frames = new FrameBuf();
    for (;;) {
      // Back-pressure: an application that does not read its events
      // stops the streams (and so the hub) rather than growing memory.
      while (this.ready.length >= MAX_READY) await new Promise<void>((wake) => this.roomWaiters.push(wake));
      const frame = await readFrame(reader, frames);
      if (frame === null) return;
      if (frame.type !== "Event") continue;
      const event = frame.event;
      switch (event.type) {
        case "Chat":
          this.deliver(event.event);
          break;
        case "QueuePosition":
          this.hand({ type: "QueuePosition", place: event.place });
          break;
        case "Queue":
          this.hand({ type: "Queue", update: event.update });
          break;
        case "Alert":
          this.hand({ type: "Alert", alert: event.alert });
          break;
        case "AlertCleared":
          this.hand({ type: "AlertCleared", channel: event.channel, chat: event.chat });
          break;
        case "StatusChanged":
          this.hand({ type: "StatusChanged", status: event.status, by: event.by });
          break;
        case "Offered":
          this.hand({ type: "Offered", offer: event.offer, expiresAt: Date.now() + event.offer.expiresInMs });
          break;
        case "OfferWithdrawn":
          this.hand({ type: "OfferWithdrawn", channel: event.channel, chat: event.chat, reason: event.reason });
          break;
        case "Monitor":
          // A picture still on its way after an unwatch is not shown.
          if (this.monitors.has(event.monitor.channel)) this.handPicture(event.monitor);
          break;
        case "MonitorStopped":
          this.monitors.delete(event.channel);
          this.hand({ type: "MonitorStopped", channel: event.channel });
          break;
        default:
          // Typing comes as a datagram, not from here.
          break;
      }
    }
  }

  private async readDatagrams(transport: WebTransport): Promise<void> {
    const reader = transport.datagrams.readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      try {
        const datagram = decodeValue(serverDatagram, value);
        // Typing indicators are dropped first when the application lags.
        if (this.ready.length < MAX_READY) this.hand({ type: "Typing", chat: datagram.chat, from: datagram.from });
      } catch {
        // A datagram that does not decode is dropped.
      }
    }
  }

  protected deliver(event: ChatEvent): void {
    for (const ready of this.order.push(event)) this.hand({ type: "Chat", event: ready });
  }

  /** Hands a monitor picture on in place of one of its channel not taken yet. */
  private handPicture(monitor: ChannelMonitor): void {
    const waiting = this.ready.findIndex((ready) => ready.type === "Monitor" && ready.monitor.channel === monitor.channel);
    if (waiting >= 0) this.ready[waiting] = { type: "Monitor", monitor };
    else this.hand({ type: "Monitor", monitor });
  }

  private hand(event: ClientEvent): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(event);
    else this.ready.push(event);
  }

  /** The connection is gone: reconnect with backoff, unless closed. */
  private lost(conn: Connection): void {
    if (this.conn !== conn) return;
    this.conn = null;
    try {
      conn.transport.close();
    } catch {
      // Already closed.
    }
    if (this.closedFor !== null) return;
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    const started = Date.now();
    let wait = this.options.backoffMs ?? 100;
    const max = this.options.maxBackoffMs ?? 5000;
    const giveUp = this.options.giveUpAfterMs ?? 5 * 60 * 1000;
    while (this.closedFor === null) {
      const now = this.redirected ? 0 : wait;
      this.redirected = false;
      await new Promise((wake) => setTimeout(wake, now));
      if (this.closedFor !== null) return;
      try {
        await this.open();
        this.reconnectCount++;
        return;
      } catch (err) {
        if (err instanceof HubError) {
          this.shut(err);
          return;
        }
        if (Date.now() - started > giveUp) {
          this.shut(new ConnectionError(`no connection for ${giveUp} ms: ${String(err)}`));
          return;
        }
        wait = Math.min(wait * 2, max);
      }
    }
  }

  private shut(reason: Error): void {
    if (this.closedFor !== null) return;
    this.closedFor = reason;
    for (const pending of this.pending.values()) pending.reject(reason);
    this.pending.clear();
    this.waiters.splice(0).forEach((wake) => wake(null));
    this.roomWaiters.splice(0).forEach((wake) => wake());
    const conn = this.conn;
    this.conn = null;
    try {
      conn?.transport.close({ closeCode: 0, reason: "bye" });
    } catch {
      // Already closed.
    }
  }
}

/**
 * A customer of the hub: start chats, send messages, read each chat's
 * events in order. Reconnects by itself and resumes every chat.
 */
export class CustomerClient extends HubLink {
  /**
   * Connects to the hub's WebTransport endpoint, e.g.
   * `https://localhost:4434/chathub`, as a customer.
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<CustomerClient> {
    const client = new CustomerClient(url, options, { type: "Customer" });
    await client.open();
    return client;
  }

  /**
   * Starts a chat on `channel` with the customer's first message: queued
   * (its events follow), or the channel's offline form when nobody can
   * answer.
   */
  async startChat(channel: string, customer: Customer, text: string): Promise<Started> {
    const secret = randomSecret();
    const reply = await this.request({
      type: "StartChat",
      channel,
      customer,
      clientId: this.nextClientId++,
      text,
      secret,
    });
    if (reply.type === "ChatStarted") {
      this.order.remember(reply.chat, secret);
      return { type: "Queued", chat: reply.chat, waiting: reply.waiting };
    }
    if (reply.type === "Offline") return { type: "Offline", form: reply.form };
    throw unexpected(reply);
  }

  /** Leaves a chat (ends it, or takes it out of the queue). */
  async leave(chat: ChatId): Promise<void> {
    const reply = await this.request({ type: "Leave", chat });
    if (reply.type !== "Done") throw unexpected(reply);
  }

  /**
   * Takes the customer back into a chat that ended within its channel's
   * `return_window` (a channel with `end_form = true`): the same chat
   * opens again (a `Reopened` event) with its transcript. Refused with
   * `NotReturnable` once the window is over, or on a channel without the
   * end form.
   */
  async returnToChat(chat: ChatId): Promise<void> {
    const secret = this.order.secret(chat);
    if (secret === null) throw new HubError("NotYourChat", `chat ${chat} was not started by this client`);
    const reply = await this.request({ type: "ReturnToChat", chat, secret });
    if (reply.type !== "Done") throw unexpected(reply);
  }

  /** Submits a channel's offline form; answers the ticket's id. */
  async submitOfflineForm(channel: string, name: string | null, email: string, message: string): Promise<number> {
    const reply = await this.request({ type: "SubmitOfflineForm", channel, name, email, message });
    if (reply.type !== "TicketCreated") throw unexpected(reply);
    return reply.ticket;
  }

  /** The live chats with their secrets and positions, for a page to keep (e.g. in sessionStorage) and resume after a reload. */
  savedChats(): SavedChat[] {
    return this.order
      .resumePoints(RESUME_POINTS)
      .filter((point): point is Resume & { secret: string } => point.secret !== null)
      .map((point) => ({ chat: point.chat, after: point.after, secret: point.secret }));
  }
}

/**
 * The hashes at `url` (`{ "hashes": [hex, ...] }`), fetched past any cache.
 * A failure is a `ConnectionError`: the hub may be restarting, and the
 * next reconnect asks again.
 */
async function fetchHashes(url: string): Promise<string[]> {
  let json: unknown;
  try {
    const answer = await fetch(url, { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    json = await answer.json();
  } catch (err) {
    throw new ConnectionError(`cannot read the certificate hashes at ${url}: ${String(err)}`);
  }
  const hashes = (json as { hashes?: unknown } | null)?.hashes;
  if (!Array.isArray(hashes) || !hashes.every((hash) => typeof hash === "string")) {
    throw new ConnectionError(`${url} lists no certificate hashes`);
  }
  return hashes;
}

/** The hello's answer is small; afterwards frames may use the whole limit. */
const MAX_FRAME_HELLO = 1 << 20;

/** The next frame off a stream; `null` when it ended. */
async function readFrame(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  frames: FrameBuf,
): Promise<ServerFrame | null> {
  for (;;) {
    const payload = frames.nextPayload();
    if (payload !== null) return decodePayload(serverFrame, payload);
    const { value, done } = await reader.read();
    if (done) return null;
    frames.push(value);
  }
}

function unexpected(reply: Reply): Error {
  return new HubError("Internal", `an unexpected answer: ${reply.type}`);
}

export type { ClientFrame };
