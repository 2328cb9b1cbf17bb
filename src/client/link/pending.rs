//! The link's unanswered requests and the rules for them across
//! reconnects: a pure state, tested without a network.
//!
//! The link's async code tells [`Pending`] what happened (a request was
//! made: [`Pending::open`]; written whole on a connection:
//! [`Pending::sent`]; it cannot be written: [`Pending::unsendable`]; a new
//! connection is up: [`Pending::reconnected`]; an answer came:
//! [`Pending::answer`]; the link closed for good: [`Pending::close`]) and
//! carries out what it hands back: requests to
//! write again, and [`Outcome`]s to deliver. No tokio, no QUIC: a request's
//! waiter is any value `W` (the link's is a oneshot sender).

use std::collections::BTreeMap;

use crate::core::{ChatEvent, ChatEventKind, Party};
use crate::protocol::{ErrorCode, ErrorFrame, Reply, RequestBody, Role};

/// The link closed for good: no request is taken any more.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct Closed(pub(super) String);

/// A request settled, for the link to carry out: take `own` in as a chat
/// event first (if any), then hand `result` to `waiter`.
#[derive(Debug)]
pub(super) struct Outcome<W> {
    /// Whoever waits for the answer.
    pub(super) waiter: W,
    /// The answer the caller gets.
    pub(super) result: Result<Reply, ErrorFrame>,
    /// The event of the client's own message or read mark, made from the
    /// answer (the hub sends no event for it to the connection that made
    /// it).
    pub(super) own: Option<ChatEvent>,
}

/// What a new connection means for the unanswered requests.
#[derive(Debug)]
pub(super) struct Reconnected<W> {
    /// Requests to write on the new connection, in id order.
    pub(super) again: Vec<(u64, RequestBody)>,
    /// Requests given up (each answered `Unavailable`), to deliver.
    pub(super) lost: Vec<Outcome<W>>,
}

/// One unanswered request.
#[derive(Debug)]
struct Request<W> {
    body: RequestBody,
    /// The generation of the connection it was last written whole on; 0
    /// while it has not been. Invariant (generations grow): never goes
    /// back, and back to 0 only when the hub answered that it did nothing
    /// with it ([`Pending::unsent`]).
    sent_on: u64,
    /// Written whole more than once (on several connections), so the hub
    /// may have taken an earlier write into account before this one.
    /// Invariant: true only if `sent_on != 0`.
    resent: bool,
    /// Whoever waits for the answer; handed out exactly once, with the
    /// request's removal.
    waiter: W,
}

/// The unanswered requests of one link, each with its waiter `W`.
///
/// Connections are numbered by generation, from 1 up, each new one above
/// every earlier one; 0 means "no connection".
#[derive(Debug)]
pub(super) struct Pending<W> {
    /// Unanswered requests by id. Ids grow as requests are made, so this is
    /// the order they were made in, and the order they are written again
    /// in. Invariant: each entry's waiter has not had an answer; empty once
    /// `closed` is set.
    requests: BTreeMap<u64, Request<W>>,
    /// Why the link closed for good, once it has. Invariant: once set,
    /// never changes.
    closed: Option<String>,
    /// Whom this client's messages are from.
    me: Party,
}

impl<W> Pending<W> {
    /// No request yet, for a link that speaks as `role`.
    pub(super) fn new(role: &Role) -> Self {
        let me = match role {
            Role::Customer => Party::Customer,
            Role::Agent { agent, .. } => Party::Agent(agent.clone()),
        };
        Self {
            requests: BTreeMap::new(),
            closed: None,
            me,
        }
    }

    /// Why the link closed for good, once it has.
    pub(super) fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// A request is made, with a fresh id (above every earlier one): it
    /// waits for its answer, unsent so far. Refused once the link closed
    /// (the waiter is dropped).
    pub(super) fn open(&mut self, id: u64, body: RequestBody, waiter: W) -> Result<(), Closed> {
        if let Some(reason) = &self.closed {
            return Err(Closed(reason.clone()));
        }
        debug_assert!(!self.requests.contains_key(&id), "request ids are fresh");
        self.requests.insert(
            id,
            Request {
                body,
                sent_on: 0,
                resent: false,
                waiter,
            },
        );
        Ok(())
    }

    /// Request `id` was written whole on connection `generation`. Nothing
    /// for an id not waiting (answered already, or not one to answer).
    pub(super) fn sent(&mut self, id: u64, generation: u64) {
        if let Some(request) = self.requests.get_mut(&id) {
            request.resent = request.sent_on != 0;
            request.sent_on = generation;
        }
    }

    /// Request `id` cannot be written (it does not encode): it is answered
    /// `InvalidRequest` with `why`.
    #[must_use = "the outcome is to be delivered"]
    pub(super) fn unsendable(
        &mut self,
        id: u64,
        why: impl std::fmt::Display,
    ) -> Option<Outcome<W>> {
        let request = self.requests.remove(&id)?;
        Some(Outcome {
            waiter: request.waiter,
            result: Err(ErrorFrame::new(
                ErrorCode::InvalidRequest,
                format!("cannot send the request: {why}"),
            )),
            own: None,
        })
    }

    /// Connection `generation` (newer than any before) is up. Every request
    /// written before and harmful twice may have taken effect: it is given
    /// up, answered `Unavailable`. Every other request not yet written on
    /// this connection is to be written on it (and then reported
    /// [`Pending::sent`]), so each goes out at most once per connection.
    #[must_use = "the requests are to be written and the outcomes delivered"]
    pub(super) fn reconnected(&mut self, generation: u64) -> Reconnected<W> {
        let given_up: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, request)| request.sent_on != 0 && !request.body.safe_to_send_again())
            .map(|(id, _)| *id)
            .collect();
        let lost = given_up
            .into_iter()
            .filter_map(|id| self.requests.remove(&id))
            .map(|request| Outcome {
                waiter: request.waiter,
                result: Err(ErrorFrame::new(
                    ErrorCode::Unavailable,
                    "the connection was lost before the answer: the request may have taken effect",
                )),
                own: None,
            })
            .collect();
        let again = self
            .requests
            .iter()
            .filter(|(_, request)| request.sent_on != generation)
            .map(|(id, request)| (*id, request.body.clone()))
            .collect();
        Reconnected { again, lost }
    }

    /// The hub answered request `id` `Elsewhere`: it did nothing with it,
    /// so the request is as if never written (the one way a request goes
    /// back to unsent) and goes out on the next connection, whether or not
    /// it is harmless twice. Nothing for an id not waiting.
    pub(super) fn unsent(&mut self, id: u64) {
        if let Some(request) = self.requests.get_mut(&id) {
            request.sent_on = 0;
            request.resent = false;
        }
    }

    /// The hub answered request `id` with `result`. Nothing for an id not
    /// waiting (answered already, given up, or one nobody waits for).
    ///
    /// An end (`EndChat`, `Leave`) written again that finds the chat ended
    /// was answered `ChatEnded` for what an earlier write did: it is done.
    /// A post's answer `Posted` comes with the event of the own message, a
    /// read mark's answer `Read` with the event that set the mark.
    #[must_use = "the outcome is to be delivered"]
    pub(super) fn answer(
        &mut self,
        id: u64,
        result: Result<Reply, ErrorFrame>,
    ) -> Option<Outcome<W>> {
        let Request {
            body,
            resent,
            waiter,
            ..
        } = self.requests.remove(&id)?;
        let mut own = None;
        let result = match (body, result) {
            (RequestBody::EndChat { .. } | RequestBody::Leave { .. }, Err(error))
                if resent && error.code == ErrorCode::ChatEnded =>
            {
                Ok(Reply::Done)
            }
            (
                RequestBody::Post {
                    chat,
                    client_id,
                    text,
                },
                Ok(Reply::Posted { seq, at }),
            ) => {
                let kind = ChatEventKind::Message {
                    from: self.me.clone(),
                    client_id,
                    text,
                };
                own = Some(ChatEvent {
                    chat,
                    seq,
                    at,
                    kind,
                });
                Ok(Reply::Posted { seq, at })
            }
            (
                RequestBody::AddNote {
                    chat,
                    client_id,
                    text,
                },
                Ok(Reply::Posted { seq, at }),
            ) => {
                if let Party::Agent(by) = &self.me {
                    own = Some(ChatEvent {
                        chat,
                        seq,
                        at,
                        kind: ChatEventKind::Note {
                            by: by.clone(),
                            client_id,
                            text,
                        },
                    });
                }
                Ok(Reply::Posted { seq, at })
            }
            (
                RequestBody::EditMessage {
                    chat,
                    seq: of,
                    text,
                },
                Ok(Reply::Posted { seq, at }),
            ) => {
                own = Some(ChatEvent {
                    chat,
                    seq,
                    at,
                    kind: ChatEventKind::Edited { seq: of, text },
                });
                Ok(Reply::Posted { seq, at })
            }
            (RequestBody::DeleteMessage { chat, seq: of }, Ok(Reply::Posted { seq, at })) => {
                own = Some(ChatEvent {
                    chat,
                    seq,
                    at,
                    kind: ChatEventKind::Deleted { seq: of },
                });
                Ok(Reply::Posted { seq, at })
            }
            (RequestBody::MarkRead { chat, .. }, Ok(Reply::Read { up_to, seq, at })) => {
                // The event that set the mark (the hub sends it to every
                // connection but this one); at or below what the
                // application has, it is dropped as a repeat.
                if seq != 0 {
                    own = Some(ChatEvent {
                        chat,
                        seq,
                        at,
                        kind: ChatEventKind::Read {
                            by: self.me.clone(),
                            up_to,
                        },
                    });
                }
                Ok(Reply::Read { up_to, seq, at })
            }
            (_, result) => result,
        };
        Some(Outcome {
            waiter,
            result,
            own,
        })
    }

    /// The link closed for good, for `reason` (the first reason given
    /// stays): every waiter is dropped unanswered, and no request is taken
    /// any more.
    pub(super) fn close(&mut self, reason: String) {
        self.closed.get_or_insert(reason);
        self.requests.clear();
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::core::{AgentId, ChatId, Timestamp};

    /// Waiters are labels: the tests see who gets which answer.
    type Labels = Pending<&'static str>;

    fn read(chat: u64) -> RequestBody {
        RequestBody::Transcript {
            chat: ChatId(chat),
            after: 0,
        }
    }

    fn take() -> RequestBody {
        RequestBody::GetNext {
            channel: "support".into(),
        }
    }

    fn end(chat: u64) -> RequestBody {
        RequestBody::EndChat { chat: ChatId(chat) }
    }

    fn post(chat: u64, client_id: u64) -> RequestBody {
        RequestBody::Post {
            chat: ChatId(chat),
            client_id,
            text: "hello".into(),
        }
    }

    fn ids(requests: &[(u64, RequestBody)]) -> Vec<u64> {
        requests.iter().map(|(id, _)| *id).collect()
    }

    fn code(result: &Result<Reply, ErrorFrame>) -> Option<ErrorCode> {
        result.as_ref().err().map(|error| error.code)
    }

    #[test]
    fn an_unsent_request_is_sent_on_the_next_connection() {
        let mut pending = Labels::new(&Role::Customer);
        pending.open(1, read(1), "read").unwrap();
        // Harmful twice, but never written: nothing to give up.
        pending.open(2, take(), "take").unwrap();
        let Reconnected { again, lost } = pending.reconnected(1);
        assert!(lost.is_empty());
        assert_eq!(again, [(1, read(1)), (2, take())]);
    }

    #[test]
    fn a_sent_safe_request_is_sent_again_once_per_new_connection() {
        let mut pending = Labels::new(&Role::Customer);
        pending.open(1, read(1), "read").unwrap();
        pending.sent(1, 1);
        let reconnected = pending.reconnected(2);
        assert!(reconnected.lost.is_empty());
        assert_eq!(ids(&reconnected.again), [1]);
        pending.sent(1, 2);
        // Already written on connection 2: not again on it.
        assert!(pending.reconnected(2).again.is_empty());
        // A request made and written on connection 2 is not either.
        pending.open(2, read(2), "later").unwrap();
        pending.sent(2, 2);
        assert!(pending.reconnected(2).again.is_empty());
        // Each new connection gets both once.
        assert_eq!(ids(&pending.reconnected(3).again), [1, 2]);
    }

    #[test]
    fn a_sent_unsafe_request_is_answered_unavailable_at_reconnect_and_removed() {
        let mut pending = Labels::new(&Role::Customer);
        pending.open(1, take(), "taken").unwrap();
        pending.sent(1, 1);
        pending.open(2, read(1), "read").unwrap();
        pending.sent(2, 1);
        let Reconnected { again, lost } = pending.reconnected(2);
        assert_eq!(ids(&again), [2]);
        let [lost] = <[_; 1]>::try_from(lost).unwrap();
        assert_eq!(lost.waiter, "taken");
        assert_eq!(code(&lost.result), Some(ErrorCode::Unavailable));
        assert!(lost.own.is_none());
        // Gone: a late answer is not for anyone, and it is not sent again.
        assert!(pending.answer(1, Ok(Reply::Done)).is_none());
        let reconnected = pending.reconnected(3);
        assert!(reconnected.lost.is_empty());
        assert_eq!(ids(&reconnected.again), [2]);
    }

    #[test]
    fn a_resent_end_answered_chat_ended_is_done_but_a_first_one_is_not() {
        let ended = || Err(ErrorFrame::new(ErrorCode::ChatEnded, "the chat ended"));
        let mut pending = Labels::new(&Role::Customer);
        for (id, body) in [(1, end(1)), (2, RequestBody::Leave { chat: ChatId(2) })] {
            pending.open(id, body, "end").unwrap();
            pending.sent(id, 1);
        }
        // Written on one connection only: the chat was ended by someone
        // else, which the caller hears.
        pending.open(3, end(3), "first").unwrap();
        // Not written before connection 2: its first write is there.
        pending.open(4, end(4), "unsent").unwrap();
        assert_eq!(ids(&pending.reconnected(2).again), [1, 2, 3, 4]);
        for id in [1, 2, 4] {
            pending.sent(id, 2);
        }
        for id in [1, 2] {
            let outcome = pending.answer(id, ended()).unwrap();
            assert_eq!(outcome.result, Ok(Reply::Done), "request {id}");
        }
        for id in [3, 4] {
            let outcome = pending.answer(id, ended()).unwrap();
            assert_eq!(code(&outcome.result), Some(ErrorCode::ChatEnded));
        }
        // Any other refusal of a resent end stays what it is.
        pending.open(5, end(5), "other").unwrap();
        pending.sent(5, 2);
        pending.sent(5, 3);
        let refused = Err(ErrorFrame::new(ErrorCode::NotYourChat, "no"));
        let outcome = pending.answer(5, refused).unwrap();
        assert_eq!(code(&outcome.result), Some(ErrorCode::NotYourChat));
    }

    #[test]
    fn a_posts_answer_comes_with_the_own_message_event() {
        let agent = AgentId::new("ana");
        let role = Role::Agent {
            agent: agent.clone(),
            token: "t".into(),
        };
        let mut pending = Labels::new(&role);
        pending.open(1, post(7, 42), "post").unwrap();
        pending.sent(1, 1);
        let posted = Reply::Posted {
            seq: 3,
            at: Timestamp(99),
        };
        let outcome = pending.answer(1, Ok(posted.clone())).unwrap();
        assert_eq!(outcome.waiter, "post");
        assert_eq!(outcome.result, Ok(posted));
        let expected = ChatEvent {
            chat: ChatId(7),
            seq: 3,
            at: Timestamp(99),
            kind: ChatEventKind::Message {
                from: Party::Agent(agent),
                client_id: 42,
                text: "hello".into(),
            },
        };
        assert_eq!(outcome.own, Some(expected));
        // A customer's message is the customer's; a refused post makes no
        // event.
        let mut pending = Labels::new(&Role::Customer);
        pending.open(1, post(7, 43), "post").unwrap();
        pending.open(2, post(7, 44), "refused").unwrap();
        let outcome = pending.answer(
            1,
            Ok(Reply::Posted {
                seq: 4,
                at: Timestamp(1),
            }),
        );
        let own = outcome.unwrap().own.unwrap();
        assert!(matches!(
            own.kind,
            ChatEventKind::Message {
                from: Party::Customer,
                client_id: 43,
                ..
            }
        ));
        let refused = Err(ErrorFrame::new(ErrorCode::ChatEnded, "ended"));
        let outcome = pending.answer(2, refused).unwrap();
        assert_eq!(code(&outcome.result), Some(ErrorCode::ChatEnded));
        assert!(outcome.own.is_none());
    }

    #[test]
    fn a_read_marks_answer_comes_with_the_event_that_set_the_mark() {
        let mut pending = Labels::new(&Role::Customer);
        let mark = |up_to| RequestBody::MarkRead {
            chat: ChatId(7),
            up_to,
        };
        pending.open(1, mark(5), "new").unwrap();
        pending.open(2, mark(0), "none").unwrap();
        let read = Reply::Read {
            up_to: 5,
            seq: 9,
            at: Timestamp(40),
        };
        let outcome = pending.answer(1, Ok(read.clone())).unwrap();
        assert_eq!(outcome.result, Ok(read));
        assert_eq!(
            outcome.own,
            Some(ChatEvent {
                chat: ChatId(7),
                seq: 9,
                at: Timestamp(40),
                kind: ChatEventKind::Read {
                    by: Party::Customer,
                    up_to: 5,
                },
            })
        );
        // Nothing marked yet: no event to make.
        let none = Reply::Read {
            up_to: 0,
            seq: 0,
            at: Timestamp(0),
        };
        let outcome = pending.answer(2, Ok(none)).unwrap();
        assert!(outcome.own.is_none());
    }

    #[test]
    fn a_request_opened_after_close_is_refused_with_the_reason() {
        let mut pending = Labels::new(&Role::Customer);
        pending.close("the hub refused to resume".into());
        pending.close("the client closed the connection".into());
        assert_eq!(pending.closed(), Some("the hub refused to resume"));
        assert_eq!(
            pending.open(1, read(1), "late"),
            Err(Closed("the hub refused to resume".into()))
        );
        let reconnected = pending.reconnected(2);
        assert!(reconnected.again.is_empty() && reconnected.lost.is_empty());
    }

    #[test]
    fn close_drops_every_waiter_unanswered() {
        let mut pending = Pending::new(&Role::Customer);
        let (unsent, mut unsent_rx) = oneshot::channel::<Result<Reply, ErrorFrame>>();
        let (sent, mut sent_rx) = oneshot::channel();
        pending.open(1, read(1), unsent).unwrap();
        pending.open(2, take(), sent).unwrap();
        pending.sent(2, 1);
        pending.close("the client closed the connection".into());
        for rx in [&mut unsent_rx, &mut sent_rx] {
            assert_eq!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        }
        assert!(pending.answer(1, Ok(Reply::Done)).is_none());
    }

    #[test]
    fn a_request_sent_elsewhere_goes_again_on_the_next_connection_even_if_unsafe() {
        let mut pending = Labels::new(&Role::Customer);
        pending.open(1, take(), "take").unwrap();
        pending.open(2, take(), "other").unwrap();
        pending.sent(1, 1);
        pending.sent(2, 1);
        // The hub answered the first `Elsewhere`: it did nothing with it.
        pending.unsent(1);
        let Reconnected { again, lost } = pending.reconnected(2);
        assert_eq!(ids(&again), [1], "sent again on the next connection");
        let lost: Vec<_> = lost.into_iter().map(|outcome| outcome.waiter).collect();
        assert_eq!(
            lost,
            ["other"],
            "an unsafe request with no such answer is given up"
        );
        pending.sent(1, 2);
        let outcome = pending
            .answer(1, Err(ErrorFrame::new(ErrorCode::QueueEmpty, "empty")))
            .expect("answered once, by the hub that serves it");
        assert_eq!(outcome.waiter, "take");
    }

    #[test]
    fn answers_for_ids_not_waiting_are_ignored() {
        let mut pending = Labels::new(&Role::Customer);
        pending.open(1, read(1), "read").unwrap();
        pending.sent(1, 1);
        // Requests nobody waits for (a status set again after a reconnect).
        pending.sent(9, 1);
        assert!(pending.answer(9, Ok(Reply::Done)).is_none());
        assert!(pending.unsendable(9, "too big").is_none());
        let outcome = pending.answer(1, Ok(Reply::Done)).unwrap();
        assert_eq!((outcome.waiter, outcome.result), ("read", Ok(Reply::Done)));
        // Answered once only.
        assert!(pending.answer(1, Ok(Reply::Done)).is_none());
        assert!(pending.reconnected(2).again.is_empty());
    }

    #[test]
    fn a_request_that_cannot_be_written_is_answered_invalid_and_removed() {
        let mut pending = Labels::new(&Role::Customer);
        pending.open(1, read(1), "read").unwrap();
        let outcome = pending.unsendable(1, "too big").unwrap();
        assert_eq!(outcome.waiter, "read");
        let error = outcome.result.unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
        assert_eq!(error.message, "cannot send the request: too big");
        assert!(pending.reconnected(2).again.is_empty());
    }
}
