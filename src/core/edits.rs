//! A transcript as its readers are shown it once edits and deletions are
//! applied. Pure.
//!
//! Editing or deleting a message appends an `Edited` or `Deleted` event;
//! the message's own event is never changed, so the log keeps what was
//! first said for supervisors and audits. Tickets and the webhook's
//! transcript are read by people outside the chat, so they show each
//! message as it stands: its latest text, and a deleted message as a
//! `Deleted` event at the message's own seq (pointing at itself).

use std::collections::BTreeMap;

use crate::core::event::{ChatEvent, ChatEventKind};

/// `events` with edits and deletions applied: every `Message` carries its
/// latest text, a deleted one becomes `Deleted { seq: its own seq }`, and
/// the `Edited` and `Deleted` events themselves are left out. An edit or
/// deletion of a message not among `events` (an earlier page) is dropped.
pub fn apply_edits<'a>(events: impl Iterator<Item = &'a ChatEvent> + Clone) -> Vec<ChatEvent> {
    enum Now<'t> {
        Text(&'t str),
        Deleted,
    }
    let mut now: BTreeMap<u64, Now<'_>> = BTreeMap::new();
    for event in events.clone() {
        match &event.kind {
            ChatEventKind::Edited { seq, text } => {
                now.entry(*seq)
                    .and_modify(|state| {
                        if let Now::Text(latest) = state {
                            *latest = text;
                        }
                    })
                    .or_insert(Now::Text(text));
            }
            ChatEventKind::Deleted { seq } => {
                now.insert(*seq, Now::Deleted);
            }
            _ => {}
        }
    }
    events
        .filter(|event| {
            !matches!(
                event.kind,
                ChatEventKind::Edited { .. } | ChatEventKind::Deleted { .. }
            )
        })
        .map(|event| match (&event.kind, now.get(&event.seq)) {
            (
                ChatEventKind::Message {
                    from, client_id, ..
                },
                Some(Now::Text(text)),
            ) => ChatEvent {
                kind: ChatEventKind::Message {
                    from: from.clone(),
                    client_id: *client_id,
                    text: (*text).to_owned(),
                },
                ..event.clone()
            },
            (ChatEventKind::Message { .. }, Some(Now::Deleted)) => ChatEvent {
                kind: ChatEventKind::Deleted { seq: event.seq },
                ..event.clone()
            },
            _ => event.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::ChatId;
    use crate::core::time::Timestamp;

    fn event(seq: u64, kind: ChatEventKind) -> ChatEvent {
        ChatEvent {
            chat: ChatId(1),
            seq,
            at: Timestamp(seq),
            kind,
        }
    }

    #[test]
    fn messages_show_their_latest_text_and_deleted_ones_show_deleted() {
        let events = [
            ChatEvent::customer_message(1, 1, "helo"),
            ChatEvent::customer_message(1, 2, "secret"),
            event(
                3,
                ChatEventKind::Edited {
                    seq: 1,
                    text: "hallo".into(),
                },
            ),
            event(
                4,
                ChatEventKind::Edited {
                    seq: 1,
                    text: "hello".into(),
                },
            ),
            event(5, ChatEventKind::Deleted { seq: 2 }),
            // An edit after a deletion never brings the text back.
            event(
                6,
                ChatEventKind::Edited {
                    seq: 2,
                    text: "again".into(),
                },
            ),
        ];
        let shown = apply_edits(events.iter());
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[0], ChatEvent::customer_message(1, 1, "hello"));
        assert_eq!(shown[1].seq, 2);
        assert_eq!(shown[1].kind, ChatEventKind::Deleted { seq: 2 });
        // The log itself is untouched.
        assert_eq!(events[1], ChatEvent::customer_message(1, 2, "secret"));
    }

    #[test]
    fn edits_of_messages_not_shown_are_dropped() {
        let events = [
            ChatEvent::customer_message(1, 5, "kept"),
            event(
                6,
                ChatEventKind::Edited {
                    seq: 2,
                    text: "x".into(),
                },
            ),
        ];
        assert_eq!(apply_edits(events.iter()), vec![events[0].clone()]);
    }
}
