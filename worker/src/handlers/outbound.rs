//! Outbound: the `delivery.send` kind, run by shared::channels' handler with the pipeline's
//! [`PipelineDeliveryStore`] and each inbox's stored outbound settings
//! ([`shared::channels::DbSettings`], table `inbox_outbound`).
//!
//! `WAHA_BASE_URL` (and `WAHA_API_KEY`) remain the deployment-wide WAHA server, used for WAHA
//! inboxes that store no base URL of their own (the demo's inbox, say). An inbox without what its
//! kind needs has its deliveries held (retried later), not lost; they go out once settings exist.

use std::sync::Arc;

use shared::{
    channels::{DbSettings, DeliveryHandler, SettingsSource, WahaDefaults},
    config::{Secret, env_or},
    conversation::{Conversations, delivery_store::PipelineDeliveryStore},
    db::DbPool,
};

/// The settings source of this deployment: the inbox tables, with the WAHA defaults from the
/// environment.
pub fn settings_from_env(db: DbPool) -> Result<DbSettings, String> {
    Ok(DbSettings::new(db, waha_defaults()?))
}

/// `WAHA_BASE_URL` and `WAHA_API_KEY`, when set.
fn waha_defaults() -> Result<Option<WahaDefaults>, String> {
    let base = env_or("WAHA_BASE_URL", "");
    if base.is_empty() {
        return Ok(None);
    }
    let base_url = base
        .parse()
        .map_err(|e| format!("WAHA_BASE_URL is not valid: {e}"))?;
    let api_key = Some(env_or("WAHA_API_KEY", ""))
        .filter(|k| !k.is_empty())
        .map(Secret::new);
    Ok(Some(WahaDefaults { base_url, api_key }))
}

/// The `delivery.send` handler of this deployment.
pub fn handler(
    conversations: &Conversations,
    settings: Arc<dyn SettingsSource>,
) -> Arc<DeliveryHandler> {
    let store = PipelineDeliveryStore::new(conversations.clone());
    DeliveryHandler::new(conversations.outbox.queues().clone(), store, settings)
}
