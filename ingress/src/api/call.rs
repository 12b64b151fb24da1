//! What every endpoint does around its work: a database connection for reads, and for writes a
//! transaction on behalf of the caller's tenant that is committed (or rolled back) and whose
//! events and jobs are then sent.

use diesel_async::pooled_connection::deadpool::Object;
use shared::conversation::{ConversationError, Tx};

use super::{ApiError, Call};

impl Call<'_> {
    pub async fn conn(&self) -> Result<Object<diesel_async::AsyncPgConnection>, ApiError> {
        self.api
            .conversations
            .db
            .get()
            .await
            .map_err(|e| ApiError::Conversation(e.into()))
    }

    /// A transaction for the caller's tenant, caused by this request.
    pub async fn begin(&self) -> Result<Tx, ApiError> {
        let tenant = self.tenant()?.to_owned();
        self.begin_for(&tenant).await
    }

    /// A transaction for `tenant` (provisioning on an operator's behalf).
    pub async fn begin_for(&self, tenant: &str) -> Result<Tx, ApiError> {
        let causation = format!("req:{}", self.request_id);
        Ok(self.api.conversations.begin(tenant, &causation).await?)
    }

    /// Commits on `Ok` (then publishes and enqueues), rolls back on `Err`.
    pub async fn commit<T>(
        &self,
        tx: Tx,
        result: Result<T, ConversationError>,
    ) -> Result<T, ApiError> {
        let (value, effects) = tx.finish(result).await?;
        self.api.conversations.settle(effects).await;
        Ok(value)
    }
}
