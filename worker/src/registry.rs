//! The job kinds this worker runs. Features register their handlers here; the queue never
//! needs to change when a kind is added.
//!
//! - built-in kinds (`noop`, `record`, `sleep`, `flaky`): shared::jobs::builtin
//! - the conversation pipeline's inbound kinds (`waha.message`, `whatsapp.message`,
//!   `messenger.message`, `messenger.postback`, `email.message`, `widget.message`) and status
//!   kinds (`waha.ack`, `whatsapp.status`, `messenger.status`): [`crate::handlers`]

use shared::{
    db::DbPool,
    jobs::{JobRegistry, builtin},
    queue::Queues,
};

use crate::handlers::{self, Pipeline};

/// Every kind, configured from the environment (BROADCAST_PREFIX, BOT_RULES_FILE…).
pub fn build(db: DbPool, queues: Queues) -> anyhow::Result<JobRegistry> {
    let pipeline = Pipeline::from_env(db.clone(), queues).map_err(anyhow::Error::msg)?;
    Ok(with_pipeline(db, pipeline))
}

/// Every kind, with an explicitly configured pipeline (tests).
pub fn with_pipeline(db: DbPool, pipeline: Pipeline) -> JobRegistry {
    let mut registry = JobRegistry::new();
    builtin::register(&mut registry, db);
    handlers::register(&mut registry, pipeline);
    registry
}
