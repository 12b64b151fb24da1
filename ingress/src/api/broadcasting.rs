//! `POST /api/broadcasting/auth`: signs a gateway client's subscription to a private channel of
//! the caller's own tenant (`{"socket_id", "channel_name"}` → `{"auth"}`), the role Laravel's
//! `/broadcasting/auth` plays for Echo. Another tenant's channel is refused, so the gateway's
//! signature check is what keeps tenants apart.

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::json;

use super::{Answer, ApiError, Call, input};

pub async fn auth(call: &Call<'_>, request: Request<Incoming>) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?.to_owned();
    let body = input::object(request).await?;
    let socket_id = input::string(&body, "socket_id")?;
    let channel = input::string(&body, "channel_name")?;
    if !shared::pusher::valid_socket_id(&socket_id) {
        return Err(ApiError::invalid("socket_id", "must look like 123.456"));
    }
    if !shared::pusher::valid_channel_name(&channel) {
        return Err(ApiError::invalid(
            "channel_name",
            "must be 1-200 characters of A-Z a-z 0-9 _ - = @ , . ;",
        ));
    }
    if !channel.starts_with(&format!("private-tenant.{tenant}.")) {
        return Err(ApiError::Forbidden(
            "a tenant key signs only its own tenant's private channels",
        ));
    }
    let auth = call.api.pusher.sign(&socket_id, &channel);
    Ok(Answer(StatusCode::OK, json!({ "auth": auth })))
}
