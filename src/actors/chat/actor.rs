//! The chat actor's life: start, stop, and one helper call per message.

use super::*;

impl Actor for ChatActor {
    type Msg = ChatMsg;
    type State = ChatActorState;
    type Arguments = ChatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ChatMsg>,
        args: ChatArgs,
    ) -> Result<ChatActorState, ActorProcessingErr> {
        args.hub.register_chat(
            args.chat.id(),
            ChatEntry {
                actor: myself.clone(),
                channel: args.chat.channel().clone(),
                claim: args.claim.clone(),
            },
        );
        let durable = args.durable;
        let limits = args.hub.limits().clone();
        // A chat restored as stored was published before the restart; a new
        // or reopened one has published nothing that gave it an agent.
        let published_agent = if usize::try_from(durable).ok() == Some(args.chat.events().len()) {
            args.chat.agent().cloned()
        } else {
            None
        };
        // A restored queued chat has waited since before the restart.
        let queued_since = match args.chat.state() {
            ChatState::Queued { since } if durable > 0 => Some(*since),
            _ => None,
        };
        let mut state = ChatActorState {
            hub: args.hub,
            chat: args.chat,
            claim: args.claim,
            customer_conn: args.customer_conn,
            token_digest: args.token_digest,
            customer: None,
            leaving: false,
            gate: Gate::new(durable),
            queued_since,
            published_agent,
            followers: Default::default(),
            barged: Default::default(),
            metrics: MessageMetrics::new(),
            customer_rate: TokenBucket::new(
                limits.messages_per_sec,
                limits.message_burst,
                Timestamp::now(),
            ),
            told_too_long: false,
            customer_gone_since: None,
            customer_file_bytes: 0,
            _origin: args.origin,
            place: None,
        };
        state.customer_file_bytes = state
            .chat
            .events()
            .iter()
            .filter_map(|event| match &event.kind {
                ChatEventKind::FileShared {
                    from: Party::Customer,
                    file,
                } => Some(file.size),
                _ => None,
            })
            .sum();
        if state.customer_conn.is_none() {
            // Restored after a restart: the customer has until the
            // channel's `abandon_after` to come back.
            state.customer_left(&myself);
        }
        if let Some(agent) = &state.published_agent {
            state.hub.set_assignment(state.chat.id(), agent.clone());
        }
        if let Some(token) = &state.token_digest {
            state.hub.set_live_token(token, Some(state.chat.id()));
        }
        if let Some(started) = args.started {
            state.persist(&myself, args.start_ops);
            state.wait(Answer::Started(started));
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ChatMsg>,
        state: &mut ChatActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.hub.unregister_chat(state.chat.id(), &myself);
        state
            .hub
            .forget_followers(state.chat.id(), std::mem::take(&mut state.followers));
        if let Some(token) = &state.token_digest {
            state.hub.set_live_token(token, None);
        }
        for answer in state.gate.fail() {
            answer.fail(HubError::Unavailable("the chat stopped".into()));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ChatMsg>,
        message: ChatMsg,
        state: &mut ChatActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChatMsg::AttachCustomer { sink, after } => {
                if Some(sink.conn()) == state.customer_conn {
                    state.attach_customer(sink, after);
                }
            }
            ChatMsg::Resume {
                sink,
                token,
                after,
                reply,
            } => {
                if state.token_digest.as_deref() != Some(token.as_slice()) {
                    let _ = reply.send(Err(HubError::NotYourChat(state.chat.id())));
                    return Ok(());
                }
                state.customer_conn = Some(sink.conn());
                state.attach_customer(sink, after);
                let live = !matches!(state.chat.state(), ChatState::Ended { .. });
                let _ = reply.send(Ok(live));
            }
            ChatMsg::Replay {
                outlet,
                conn,
                after,
            } => {
                // Into the outlet from here, as the chat's live events go:
                // the connection has them all, in order, from now on.
                let events = state
                    .durable_after(after)
                    .map(|event| Arc::new(event.clone()));
                outlet.replayed(
                    conn,
                    state.chat.id(),
                    events,
                    state.gate.durable().max(after),
                );
            }
            ChatMsg::CustomerGone(conn) => {
                if state
                    .customer
                    .as_ref()
                    .is_some_and(|sink| sink.conn() == conn)
                {
                    state.customer_left(&myself);
                }
            }
            ChatMsg::AbandonIfGone => state.abandon_if_gone(&myself)?,
            ChatMsg::Assign { agent, reply } => match state.assign(agent) {
                Ok(assignment) => {
                    state.persist(&myself, Vec::new());
                    state.wait(Answer::Assigned(reply, assignment));
                    if state.leaving {
                        state.end(&myself, Party::Customer)?;
                    }
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            ChatMsg::Post {
                caller,
                conn,
                client_id,
                text,
                note,
                whisper,
                sent,
                reply,
            } => {
                stages::since(&STAGES.to_chat, sent);
                let admitted = state.party(&caller).and_then(|party| {
                    // A retry of a stored message is answered as stored,
                    // whatever the pace and length now.
                    if party == Party::Customer
                        && state.chat.posted_seq(&party, client_id).is_none()
                    {
                        state.admit_customer_post(&myself, &text)?;
                    }
                    Ok(party)
                });
                match admitted {
                    Ok(party) => {
                        let post = Post {
                            client_id,
                            text,
                            note,
                            whisper,
                        };
                        state.post(&myself, party, post, Some(conn), reply);
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::MarkRead {
                caller,
                conn,
                up_to,
                reply,
            } => state.mark_read(&myself, &caller, conn, up_to, reply),
            ChatMsg::Tag {
                by,
                overseer,
                tag,
                add,
                reply,
            } => {
                let now = Timestamp::now();
                let done = if add {
                    state.chat.tag(by, overseer, &tag, now)
                } else {
                    state.chat.untag(by, overseer, &tag, now)
                };
                if let Ok(Some(_)) = done {
                    let change = if add { "added" } else { "removed" };
                    metrics::counter!("chathub_tag_changes_total", "change" => change).increment(1);
                }
                let done = done.map(|_| ()).map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::Change {
                caller,
                conn,
                seq,
                text,
                reply,
            } => state.change_message(&myself, &caller, conn, seq, text, reply),
            ChatMsg::Typing { caller } => state.typing(&caller),
            ChatMsg::End { caller, reply } => {
                let ended = match state.party(&caller) {
                    Ok(Party::Customer) => state.leave(&myself, Party::Customer).map(|_| ()),
                    Ok(party) => state.end(&myself, party),
                    Err(err) => Err(err),
                };
                match ended {
                    Ok(()) => state.wait(Answer::Ended(reply)),
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::Discard => {
                if state.claim.claim(Claimer::Abandon).is_ok() {
                    state.end(&myself, Party::System)?;
                }
            }
            ChatMsg::SetPriority {
                by,
                priority,
                reply,
            } => {
                let done = state
                    .chat
                    .set_priority(by, priority, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::TransferToAgent { by, to, reply } => {
                let done = state
                    .chat
                    .transfer_to_agent(&by, to, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::Reassign { by, to, reply } => {
                let done = state
                    .chat
                    .reassign(by, to, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::Decline { by, reply } => {
                // Back to the agent who transferred it, if they can take it;
                // otherwise to the queue.
                let back = state
                    .chat
                    .transferred_from()
                    .filter(|from| state.hub.try_reserve_slot(from))
                    .cloned();
                let done = state.chat.decline(&by, back.clone(), Timestamp::now());
                if done.is_err()
                    && let Some(back) = &back
                {
                    state.hub.release_slot(back);
                }
                let done = done.map(|_| ()).map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::Requeue { by, channel, reply } => {
                let done = state
                    .chat
                    .requeue(Some(&by), channel, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::AgentGone { agent, requeue } => {
                let now = Timestamp::now();
                if state.chat.agent_gone(&agent, now).is_ok() {
                    if requeue {
                        let channel = state.chat.channel().clone();
                        // Recorded with the notice, in one commit.
                        let _ = state.chat.requeue(None, channel, now);
                    }
                    state.persist(&myself, Vec::new());
                }
            }
            ChatMsg::CreateTicket {
                by,
                ticket,
                subject,
                note,
                reply,
            } => {
                let made = state
                    .chat
                    .ticket_created(&by, ticket, subject.clone(), Timestamp::now())
                    .map_err(HubError::from)
                    .map(|_| ());
                match made {
                    Ok(()) => {
                        let customer = state.chat.customer().clone();
                        let mut ops: Vec<Op> =
                            crate::store::contact_keys(&customer, state.chat.verified())
                                .into_iter()
                                .map(|key| Op::ContactTicket {
                                    key,
                                    ticket: ticket.0,
                                })
                                .collect();
                        let (transcript, left_out) =
                            crate::core::ticket::ticket_transcript(state.chat.events());
                        let message = if left_out == 0 {
                            note
                        } else {
                            format!(
                                "{note}\n\n(The transcript holds the chat's start and its last {} events; {left_out} in between are in the chat's own transcript.)",
                                transcript.len() - 1
                            )
                        };
                        ops.push(Op::Ticket(Box::new(Ticket {
                            id: ticket,
                            channel: state.chat.channel().clone(),
                            source: TicketSource::Chat(state.chat.id()),
                            customer,
                            subject,
                            message,
                            transcript,
                            created: Timestamp::now(),
                        })));
                        state.persist(&myself, ops);
                        state.wait(Answer::Ticket(reply, ticket));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::PostKnowledge {
                by,
                agent_name,
                client_id,
                body,
                reply,
            } => {
                let text = crate::core::knowledge::fill(
                    &body,
                    &crate::core::knowledge::Placeholders {
                        customer: state.chat.customer(),
                        agent_name: &agent_name,
                        channel: state.chat.channel(),
                    },
                );
                // The agent's connections learn the filled-in text from the
                // event.
                let post = Post {
                    client_id,
                    text,
                    note: false,
                    whisper: false,
                };
                state.post(&myself, Party::Agent(by), post, None, reply);
            }
            ChatMsg::MayShare {
                caller,
                size,
                reply,
            } => {
                let _ = reply.send(state.may_share(&caller, size));
            }
            ChatMsg::ShareFile {
                caller,
                file,
                reply,
            } => {
                let shared = state.party(&caller).and_then(|party| {
                    if party == Party::Customer {
                        state.admit_customer_post(&myself, &file.name)?;
                        if state.customer_file_bytes.saturating_add(file.size)
                            > state.hub.limits().chat_file_bytes
                        {
                            return Err(HubError::limited(
                                Limit::UploadBytes,
                                "the chat's files are at their limit",
                            ));
                        }
                        state.customer_file_bytes += file.size;
                    }
                    state
                        .chat
                        .share_file(party, file.clone(), Timestamp::now())
                        .map(Receipt::from)
                        .map_err(HubError::from)
                });
                match shared {
                    Ok(receipt) => {
                        let stored = StoredFile {
                            file,
                            chat: state.chat.id(),
                        };
                        state.persist(&myself, vec![Op::File(stored)]);
                        let shared = Answer::Posted(reply, receipt, std::time::Instant::now());
                        if let Some(answer) = state.gate.wait(receipt.seq, shared) {
                            answer.succeed(&state.metrics);
                        }
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::Place(place) => {
                if matches!(state.chat.state(), ChatState::Queued { .. }) {
                    state.place = Some(place);
                    if let Some(sink) = &state.customer {
                        let _ = sink.deliver(Outbound::QueuePosition(place));
                    }
                }
            }
            ChatMsg::WaitingRow { reply } => {
                let row = match state.chat.state() {
                    ChatState::Queued { since } => {
                        Some((state.chat.queue_row(*since), state.chat.skills().clone()))
                    }
                    _ => None,
                };
                let _ = reply.send(row);
            }
            ChatMsg::IsParticipant { caller, reply } => {
                let participant = match state.party(&caller) {
                    Ok(Party::Customer) => true,
                    Ok(Party::Agent(agent)) => state.chat.agent() == Some(&agent),
                    _ => false,
                };
                let _ = reply.send(Ok(participant));
            }
            ChatMsg::Transcript { after, reply } => {
                let (events, more) = transcript_page(state.durable_after(after));
                let _ = reply.send(TranscriptPage {
                    channel: state.chat.channel().clone(),
                    events,
                    more,
                });
            }
            ChatMsg::Committed { seq, at } => {
                stages::since(&STAGES.to_publish, at);
                state.committed(&myself, seq);
            }
            ChatMsg::CommitFailed(err) => {
                for answer in state.gate.fail() {
                    answer.fail(HubError::StorageUnavailable(err.to_string()));
                }
                return Err(format!("{}: {err}", state.chat.id()).into());
            }
            #[cfg(test)]
            ChatMsg::Crash => panic!("chat actor crash requested by a test"),
            ChatMsg::Follow { by, reply } => {
                let _ = reply.send(state.follow(by));
            }
            ChatMsg::BargeIn { by, reply } => {
                let done = state
                    .chat
                    .barge_in(by, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::LeaveBargeIn { by, reply } => {
                let done = state
                    .chat
                    .leave_barge_in(by, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::Unfollow { by } => {
                state.followers.remove(&by);
            }
        }
        Ok(())
    }
}
