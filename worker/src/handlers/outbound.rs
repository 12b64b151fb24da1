//! Outbound: the `delivery.send` kind, run by shared::channels' handler with the pipeline's
//! [`PipelineDeliveryStore`] and the outbound settings this deployment has.
//!
//! Inbox rows do not hold outbound credentials yet, so settings come from the environment:
//! widget inboxes need none (replies are published on the session's channel); WAHA inboxes use
//! `WAHA_BASE_URL` (and `WAHA_API_KEY`) with the inbox's WAHA session. Other channels have no
//! settings until their credentials are stored: their deliveries are held (retried later), not
//! lost, and go out once settings exist.

use std::sync::Arc;

use futures::future::BoxFuture;
use shared::{
    channels::{ChannelSettings, DeliveryHandler, HttpOptions, SettingsSource, WahaConfig},
    config::{Secret, env_or},
    conversation::{Conversations, delivery_store::PipelineDeliveryStore},
    db::DbPool,
    inboxes::{self, InboxKind, InboxLookup},
    jobs::JobError,
};

/// Outbound settings from the environment (see the module docs).
pub struct EnvSettings {
    db: DbPool,
    waha: Option<(url::Url, Option<Secret>)>,
}

impl EnvSettings {
    pub fn from_env(db: DbPool) -> Result<Self, String> {
        let base = env_or("WAHA_BASE_URL", "");
        let waha = if base.is_empty() {
            None
        } else {
            let url = base
                .parse()
                .map_err(|e| format!("WAHA_BASE_URL is not valid: {e}"))?;
            let key = Some(env_or("WAHA_API_KEY", ""))
                .filter(|k| !k.is_empty())
                .map(Secret::new);
            Some((url, key))
        };
        Ok(Self { db, waha })
    }
}

impl SettingsSource for EnvSettings {
    fn settings<'a>(
        &'a self,
        inbox_id: &'a str,
        kind: InboxKind,
    ) -> BoxFuture<'a, Result<Option<ChannelSettings>, JobError>> {
        Box::pin(async move {
            match kind {
                InboxKind::Widget => Ok(Some(ChannelSettings::Widget)),
                InboxKind::Waha => {
                    let Some((base_url, api_key)) = &self.waha else {
                        return Ok(None);
                    };
                    let inbox = inboxes::find(&self.db, &InboxLookup::Id(inbox_id.to_owned()))
                        .await
                        .map_err(JobError::transient)?;
                    Ok(inbox.map(|inbox| {
                        ChannelSettings::Waha(WahaConfig {
                            base_url: base_url.clone(),
                            session: inbox.waha_session.unwrap_or_else(|| "default".into()),
                            api_key: api_key.clone(),
                            http: HttpOptions::default(),
                        })
                    }))
                }
                _ => Ok(None),
            }
        })
    }
}

/// The `delivery.send` handler of this deployment.
pub fn handler(
    conversations: &Conversations,
    settings: Arc<dyn SettingsSource>,
) -> Arc<DeliveryHandler> {
    let store = PipelineDeliveryStore::new(conversations.clone());
    DeliveryHandler::new(conversations.outbox.queues().clone(), store, settings)
}
