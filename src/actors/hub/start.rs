//! The hub's life: the supervision tree started over a store, what the
//! store holds brought back, and the tree stopped.

use super::*;

impl Hub {
    /// Starts the supervision tree (the root and one actor per channel)
    /// over `store`, and recovers what the store holds: every chat that had
    /// not ended is live again, queued chats in their original order with
    /// their original wait time, active chats with their agent.
    pub async fn start(config: HubConfig, store: Store) -> Result<Self, HubError> {
        let (root, _) = Actor::spawn(None, HubActor, ())
            .await
            .map_err(|err| gone(format!("cannot start the hub: {err}")))?;
        let channels = DashMap::new();
        let settings = DashMap::new();
        for channel in config.channels {
            let (actor, _) =
                Actor::spawn_linked(None, ChannelActor, channel.clone(), root.get_cell())
                    .await
                    .map_err(|err| gone(format!("cannot start channel {}: {err}", channel.id)))?;
            channels.insert(channel.id.clone(), actor);
            settings.insert(channel.id.clone(), Arc::new(channel));
        }
        let presence = Presence::new(settings.iter().map(|entry| entry.key().clone()));
        let agents = config
            .agents
            .into_iter()
            .map(|agent| {
                presence
                    .add_agent(agent.id.clone(), &agent.channels, agent.capacity)
                    .set_skills(agent.skills.clone());
                let entry = AgentEntry {
                    token_digest: agent.token.clone(),
                    config: agent,
                };
                (entry.config.id.clone(), Arc::new(entry))
            })
            .collect();
        let (last_chat, last_ticket, last_item, last_file) = blocking({
            let store = store.clone();
            move || {
                Ok((
                    store.last_chat_id()?,
                    store.last_ticket_id()?,
                    store.last_id(Counter::Knowledge)?,
                    store.last_id(Counter::Files)?,
                ))
            }
        })
        .await?;
        let known = blocking({
            let store = store.clone();
            move || store.file_ids()
        })
        .await?;
        let files_used = config.files.sweep(known).await.map_err(store_error)?;
        let (failed_tx, storage_failed) = tokio::sync::watch::channel(None);
        store.on_failure(move |err| {
            let _ = failed_tx.send(Some(err.to_string()));
        });
        let hub = Self {
            shared: Arc::new(Shared {
                settings,
                draining: dashmap::DashSet::new(),
                channels,
                agents,
                reloading: tokio::sync::Mutex::new(()),
                agent_actors: DashMap::new(),
                chats: DashMap::new(),
                assignments: DashMap::new(),
                follows: DashMap::new(),
                monitors: Default::default(),
                offers: DashMap::new(),
                live_tokens: DashMap::new(),
                presence,
                presence_grace: config.presence_grace,
                form_pace: Pace::per_minute(config.limits.offline_forms_per_minute),
                start_pace: Pace::per_minute(config.limits.chat_starts_per_minute),
                rate_pace: Pace::per_minute(config.limits.offline_forms_per_minute),
                sign_in_pace: sign_in::SignInPace::new(&config.limits),
                unknown_agent: TokenDigest::of(&format!("{:?}", std::time::Instant::now())),
                limits: config.limits.clone(),
                origins: Arc::default(),
                reopening: DashMap::new(),
                next_chat: AtomicU64::new(last_chat.max(config.ids_after) + 1),
                next_ticket: AtomicU64::new(last_ticket.max(config.ids_after) + 1),
                next_item: AtomicU64::new(last_item.max(config.ids_after) + 1),
                next_file: AtomicU64::new(last_file.max(config.ids_after) + 1),
                file_slots: Arc::new(tokio::sync::Semaphore::new(config.limits.files_in_flight)),
                file_slots_per_ip: DashMap::new(),
                upload_pace: {
                    let per_hour_kib = (config.limits.upload_bytes_per_hour >> 10).max(1);
                    Pace::new(
                        per_hour_kib as f64 / 3600.0,
                        u32::try_from(per_hour_kib).unwrap_or(u32::MAX),
                    )
                },
                files_used: AtomicU64::new(files_used),
                files: config.files,
                retired: tokio::sync::watch::Sender::new(false),
                failures: AtomicU64::new(0),
                storage_failed,
                root: root.clone(),
                store,
            }),
        };
        root.cast(HubMsg::Init(hub.clone()))
            .map_err(|_| gone("the hub root stopped"))?;
        for actor in hub.shared.channels.iter() {
            let _ = actor.cast(ChannelMsg::Init(hub.clone()));
        }
        hub.recover().await?;
        retention::spawn_retention(Arc::downgrade(&hub.shared));
        Ok(hub)
    }

    /// Stops every actor and waits for the root to finish.
    pub async fn shutdown(&self) {
        let root = &self.shared.root;
        root.stop_children_and_wait(Some("shutdown".into()), None)
            .await;
        let _ = root.stop_and_wait(Some("shutdown".into()), None).await;
        self.shared.chats.clear();
        self.shared.agent_actors.clear();
        // This hub's active chats are no longer this process's (in a
        // cluster, its partition moves to another hub).
        let active = self.shared.assignments.len();
        self.shared.assignments.clear();
        metrics::gauge!("chathub_chats_active").decrement(active as f64);
        let store = self.shared.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}
