//! Telegram long polling, for installs without a public URL: one task per Telegram channel in
//! `polling` mode, calling `getUpdates` and storing each update as an event (processed by the
//! same job as a webhook). The offset is confirmed (stored as last `update_id` + 1, and sent
//! with the next call, which is how Telegram drops confirmed updates) only after the update is
//! stored, so a crash re-reads rather than loses; duplicates are dropped by provider id when
//! processed. A channel that has a webhook set answers 409 to `getUpdates`: the poller removes
//! the webhook and goes on.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    adapters,
    model::ChannelId,
    provider::SendError,
    service::{Channel, Channels},
    telegram::TelegramClient,
};

/// How long one `getUpdates` waits for updates (below the HTTP timeout).
const LONG_POLL_SECS: u32 = 10;
/// How often the list of polling channels is re-read.
const REFRESH: Duration = Duration::from_secs(10);

/// Runs until `shutdown`.
pub async fn run(channels: Arc<Channels>, shutdown: CancellationToken) {
    let mut running: HashMap<ChannelId, (wamage_kernel::Timestamp, CancellationToken)> =
        HashMap::new();
    loop {
        match channels.polling_channels().await {
            Ok(list) => {
                let live: HashMap<ChannelId, &Channel> = list.iter().map(|c| (c.id, c)).collect();
                running.retain(|id, (at, token)| {
                    let keep = live.get(id).is_some_and(|c| c.updated_at == *at);
                    if !keep {
                        token.cancel();
                    }
                    keep
                });
                let fresh: Vec<&Channel> = list
                    .iter()
                    .filter(|c| !running.contains_key(&c.id))
                    .collect();
                for c in fresh {
                    let token = shutdown.child_token();
                    running.insert(c.id, (c.updated_at, token.clone()));
                    tokio::spawn(poll(channels.clone(), c.clone(), token));
                }
            }
            Err(p) => tracing::warn!(error = %p, "failed to list Telegram polling channels"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(REFRESH) => {}
        }
    }
    for (_, token) in running.values() {
        token.cancel();
    }
}

async fn poll(channels: Arc<Channels>, c: Channel, token: CancellationToken) {
    let mut cfg = adapters::telegram_config(&channels, &c);
    cfg.timeout = Duration::from_secs(u64::from(LONG_POLL_SECS) + 15);
    let client = TelegramClient::with_http(cfg, channels.http_client().clone());
    let mut offset = c.poll_offset;
    let mut backoff = Duration::from_secs(1);
    tracing::info!(channel = %c.id, "Telegram long polling started");
    loop {
        let res = tokio::select! {
            () = token.cancelled() => break,
            r = client.get_updates(offset, LONG_POLL_SECS) => r,
        };
        match res {
            Ok(updates) => {
                backoff = Duration::from_secs(1);
                for u in updates {
                    let Some(id) = u.get("update_id").and_then(serde_json::Value::as_i64) else {
                        continue;
                    };
                    if let Err(p) = channels.store_polled(&c, &u).await {
                        tracing::warn!(error = %p, channel = %c.id, "failed to store a polled update");
                        break;
                    }
                    offset = Some(id + 1);
                    if let Err(p) = channels.set_poll_offset(c.id, id + 1).await {
                        tracing::warn!(error = %p, channel = %c.id, "failed to store the poll offset");
                    }
                }
            }
            Err(e) => {
                let wait = match &e {
                    SendError::Retryable {
                        retry_after: Some(d),
                        ..
                    } => *d,
                    SendError::Permanent { code: 409, .. } => {
                        // A webhook is set: polling and webhooks exclude each other.
                        if let Err(e) = client.delete_webhook().await {
                            tracing::warn!(error = %e, channel = %c.id, "deleteWebhook failed");
                        }
                        Duration::from_millis(100)
                    }
                    SendError::NeedsAction { .. } => {
                        channels.note_send_error(&c, &e).await;
                        Duration::from_secs(60)
                    }
                    _ => backoff,
                };
                tracing::debug!(error = %e, channel = %c.id, "getUpdates failed");
                backoff = (backoff * 2).min(Duration::from_secs(60));
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
