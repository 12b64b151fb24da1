//! API keys: the bearer token is looked up by its SHA-256 (shared::conversation::api_keys);
//! a tenant key may act only within its tenant, an operator key only on provisioning.

use hyper::{HeaderMap, header};
use shared::conversation::api_keys::{self, Principal, Scope};

use super::{Api, ApiError, Call};

pub async fn authenticate(api: &Api, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = crate::verify::bearer_token(header).ok_or(ApiError::MissingKey)?;
    let mut conn = api
        .conversations
        .db
        .get()
        .await
        .map_err(|e| ApiError::Conversation(e.into()))?;
    api_keys::authenticate(&mut conn, token)
        .await?
        .ok_or(ApiError::BadKey)
}

impl Call<'_> {
    /// The caller's tenant; operator keys are refused (they do not speak for a tenant).
    pub fn tenant(&self) -> Result<&str, ApiError> {
        match &self.principal.scope {
            Scope::Tenant { tenant_id } => Ok(tenant_id),
            Scope::Operator => Err(ApiError::Forbidden(
                "an operator key provisions; use a tenant key for agent actions",
            )),
        }
    }

    /// Provisioning is for operator keys only.
    pub fn operator(&self) -> Result<(), ApiError> {
        match self.principal.scope {
            Scope::Operator => Ok(()),
            Scope::Tenant { .. } => Err(ApiError::Forbidden("provisioning needs an operator key")),
        }
    }
}
