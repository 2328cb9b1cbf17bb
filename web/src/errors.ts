// Typed errors, mirroring the hub's `ErrorCode` (src/protocol/error.rs) in
// its order: the wire carries the variant's index.

/** Every error code, in the order of the Rust enum. */
export const ERROR_CODES = [
  "BadFrame",
  "UnsupportedVersion",
  "Unauthorized",
  "NotAllowed",
  "UnknownChannel",
  "UnknownChat",
  "UnknownTicket",
  "NotYourChat",
  "ChatEnded",
  "ChatAlreadyTaken",
  "QueueEmpty",
  "QueueFull",
  "AtCapacity",
  "NotReturnable",
  "AgentUnavailable",
  "FileTooLarge",
  "UnknownItem",
  "EmptyMessage",
  "MessageTooLong",
  "InvalidRequest",
  "Unavailable",
  "Internal",
  "RateLimited",
  "TooManyChats",
  "ChatTooLong",
  "StorageUnavailable",
  "Unverified",
  "ReadBeyondEnd",
  "NotOffered",
  "InvalidTag",
  "TooManyTags",
  "NotYourMessage",
  "EditWindowPassed",
  "UnknownMessage",
  "AlreadyDeleted",
  "ContactBusy",
  "Elsewhere",
] as const;

/** Why the hub refused a request (`ErrorCode`). */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The hub refused a request, or closed the connection with a reason. */
export class HubError extends Error {
  constructor(
    /** The hub's code, to tell refusals apart. */
    readonly code: ErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = "HubError";
  }
}

/** The connection is gone and the request cannot be answered (the client is closed, or gave up on it). */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionError";
  }
}
