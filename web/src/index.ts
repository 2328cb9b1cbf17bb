// The chathub SDK for browsers. `CustomerClient` (and `AgentClient`, for
// an agent's console) connects over
// WebTransport and speaks the hub's own frames (`frames.ts`, bincode 2 as
// in src/protocol/), so a browser is served by the same request handling
// as a native client.

export { AgentClient } from "./agent.js";
export type { Status } from "./agent.js";
export { CustomerClient, HubLink, elsewhereTarget } from "./client.js";
export type { ClientEvent, ConnectOptions, SavedChat, Started } from "./client.js";
export { ConnectionError, ERROR_CODES, HubError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { DecodeError } from "./bincode.js";
export * from "./frames.js";
export { ChatOrder, MAX_HELD } from "./order.js";
export { Offers, endsOffer, secondsLeft } from "./offers.js";
export type { StandingOffer } from "./offers.js";
