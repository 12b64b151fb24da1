//! Which channel an inbox speaks, checked against the job's tenant, remembered per process.
//!
//! Every inbound job asks (a job naming another tenant's inbox is refused as not found). An
//! inbox never changes tenant or channel and is never deleted, so a positive answer stays true
//! and is kept; a miss or another tenant's inbox always asks the database again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use diesel_async::AsyncPgConnection;
use shared::{
    conversation::{ConversationError, directory},
    inboxes::InboxKind,
};

/// Cheap to clone; clones share the memory.
#[derive(Clone, Default)]
pub struct InboxKinds {
    /// inbox id → (tenant id, channel).
    known: Arc<Mutex<HashMap<String, (String, InboxKind)>>>,
}

impl InboxKinds {
    /// The channel of inbox `inbox_id` if it belongs to `tenant_id`.
    pub async fn of_tenant(
        &self,
        conn: &mut AsyncPgConnection,
        inbox_id: &str,
        tenant_id: &str,
    ) -> Result<InboxKind, ConversationError> {
        if let Some(kind) = self.remembered(inbox_id, tenant_id) {
            return Ok(kind);
        }
        let kind = directory::inbox_of_tenant(conn, inbox_id, tenant_id).await?;
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(inbox_id.to_owned(), (tenant_id.to_owned(), kind));
        Ok(kind)
    }

    fn remembered(&self, inbox_id: &str, tenant_id: &str) -> Option<InboxKind> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .get(inbox_id)
            .filter(|(tenant, _)| tenant == tenant_id)
            .map(|(_, kind)| *kind)
    }
}
