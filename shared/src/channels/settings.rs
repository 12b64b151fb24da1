//! Outbound settings from Postgres: the [`SettingsSource`] the worker runs, building each
//! inbox's [`ChannelSettings`] from its `inboxes` row (kind, WAHA session, phone_number_id) and
//! its `inbox_outbound` row (base URL, version, token, SMTP account).
//!
//! Per kind: WAHA sends to the row's base URL with the inbox's session and the row's token as
//! X-Api-Key, falling back field by field to the deployment's `WAHA_BASE_URL` / `WAHA_API_KEY`
//! ([`WahaDefaults`]) for inboxes provisioned before credentials were stored; Messenger and
//! WhatsApp Cloud send to the Graph API ([`GRAPH_BASE`] unless overridden, [`GRAPH_VERSION`]
//! unless set) with the row's token, WhatsApp Cloud as the inbox's phone number; email sends
//! through the row's SMTP account; the widget needs nothing. An inbox without what its kind
//! needs has no settings (`None`): the handler holds its deliveries instead of failing them.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{
    ChannelSettings, HttpOptions, MessengerConfig, SmtpConfig, WahaConfig, WhatsappCloudConfig,
    handler::{InboxState, SettingsSource},
};
use crate::{
    config::Secret,
    db::DbPool,
    inboxes::{self, Inbox, InboxKind, InboxLookup, outbound},
    jobs::JobError,
};

/// The Graph API in production.
pub const GRAPH_BASE: &str = "https://graph.facebook.com";
/// The Graph API version used when an inbox stores none.
pub const GRAPH_VERSION: &str = "v21.0";
/// One SMTP attempt, connect to the server's final answer.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The WAHA session of an inbox that names none (WAHA's own default).
const DEFAULT_WAHA_SESSION: &str = "default";

/// The deployment-wide WAHA server (`WAHA_BASE_URL`, `WAHA_API_KEY`).
#[derive(Clone, Debug)]
pub struct WahaDefaults {
    pub base_url: url::Url,
    pub api_key: Option<Secret>,
}

/// [`SettingsSource`] on the inbox tables.
pub struct DbSettings {
    db: DbPool,
    waha: Option<WahaDefaults>,
    http: HttpOptions,
}

impl DbSettings {
    pub fn new(db: DbPool, waha: Option<WahaDefaults>) -> Self {
        Self {
            db,
            waha,
            http: HttpOptions::default(),
        }
    }

    async fn load(&self, inbox_id: &str) -> Result<Option<ChannelSettings>, JobError> {
        let inbox = inboxes::find(&self.db, &InboxLookup::Id(inbox_id.to_owned()))
            .await
            .map_err(JobError::transient)?;
        let Some(inbox) = inbox else {
            return Ok(None);
        };
        let mut conn = self.db.get().await.map_err(JobError::transient)?;
        let row = outbound::get(&mut conn, inbox_id)
            .await
            .map_err(JobError::transient)?;
        let stored = row.map(|r| r.settings).unwrap_or_default();
        Ok(build(&inbox, &stored, self.waha.as_ref(), self.http))
    }

    async fn inbox_state(&self, inbox_id: &str) -> Result<InboxState, JobError> {
        let mut conn = self.db.get().await.map_err(JobError::transient)?;
        let row = outbound::revision(&mut conn, inbox_id)
            .await
            .map_err(JobError::transient)?;
        Ok(match row {
            None => InboxState::default(),
            Some((updated_at, pause)) => InboxState {
                revision: Some(updated_at.timestamp_micros()),
                paused: pause.map(|p| p.reason),
            },
        })
    }
}

impl SettingsSource for DbSettings {
    fn settings<'a>(
        &'a self,
        inbox_id: &'a str,
        _kind: InboxKind,
    ) -> BoxFuture<'a, Result<Option<ChannelSettings>, JobError>> {
        Box::pin(self.load(inbox_id))
    }

    fn state<'a>(&'a self, inbox_id: &'a str) -> BoxFuture<'a, Result<InboxState, JobError>> {
        Box::pin(self.inbox_state(inbox_id))
    }
}

/// The settings `inbox` sends with, from what is stored for it and the deployment's WAHA
/// defaults; `None` when something its kind needs is missing.
pub fn build(
    inbox: &Inbox,
    stored: &outbound::OutboundSettings,
    waha: Option<&WahaDefaults>,
    http: HttpOptions,
) -> Option<ChannelSettings> {
    let graph_base = || {
        stored
            .api_base_url
            .clone()
            .or_else(|| GRAPH_BASE.parse().ok())
    };
    let version = || {
        stored
            .api_version
            .clone()
            .unwrap_or_else(|| GRAPH_VERSION.to_owned())
    };
    Some(match inbox.kind {
        InboxKind::Widget => ChannelSettings::Widget,
        InboxKind::Waha => {
            // The deployment's key goes only to the deployment's server.
            let (base_url, api_key) = match (&stored.api_base_url, waha) {
                (Some(base), _) => (base.clone(), stored.access_token.clone()),
                (None, Some(d)) => (
                    d.base_url.clone(),
                    stored.access_token.clone().or_else(|| d.api_key.clone()),
                ),
                (None, None) => return None,
            };
            ChannelSettings::Waha(WahaConfig {
                base_url,
                session: inbox
                    .waha_session
                    .clone()
                    .unwrap_or_else(|| DEFAULT_WAHA_SESSION.into()),
                api_key,
                http,
            })
        }
        InboxKind::Messenger => ChannelSettings::Messenger(MessengerConfig {
            graph_base: graph_base()?,
            api_version: version(),
            page_access_token: stored.access_token.clone()?,
            http,
        }),
        InboxKind::WhatsappCloud => ChannelSettings::WhatsappCloud(WhatsappCloudConfig {
            graph_base: graph_base()?,
            api_version: version(),
            phone_number_id: inbox.phone_number_id.clone()?,
            access_token: stored.access_token.clone()?,
            http,
        }),
        InboxKind::Email => {
            let smtp = stored.smtp.as_ref()?;
            ChannelSettings::Email(SmtpConfig {
                host: smtp.host.clone(),
                port: smtp.port,
                security: smtp.security,
                username: smtp.username.clone(),
                password: smtp.password.clone(),
                from: smtp.from.clone(),
                timeout: SMTP_TIMEOUT,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inboxes::outbound::{OutboundSettings, SmtpAccount};

    fn inbox(kind: InboxKind) -> Inbox {
        Inbox {
            id: "inb_1".into(),
            tenant_id: "ten_1".into(),
            kind,
            name: "x".into(),
            page_id: Some("page".into()),
            phone_number_id: Some("1065".into()),
            waha_session: Some("sales".into()),
            waha_hmac_key: None,
            widget_token: None,
            email: None,
        }
    }

    fn defaults() -> WahaDefaults {
        WahaDefaults {
            base_url: "http://waha.env:3000".parse().unwrap(),
            api_key: Some(Secret::new("env-key")),
        }
    }

    fn http() -> HttpOptions {
        HttpOptions::default()
    }

    #[test]
    fn waha_uses_the_row_then_the_deployment_defaults() {
        let none = OutboundSettings::default();
        let Some(ChannelSettings::Waha(c)) =
            build(&inbox(InboxKind::Waha), &none, Some(&defaults()), http())
        else {
            panic!("waha settings from the environment")
        };
        assert_eq!(c.base_url.as_str(), "http://waha.env:3000/");
        assert_eq!(c.session, "sales");
        assert_eq!(c.api_key.unwrap().expose(), "env-key");
        assert!(build(&inbox(InboxKind::Waha), &none, None, http()).is_none());

        let stored = OutboundSettings {
            api_base_url: Some("http://waha.row:3000".parse().unwrap()),
            ..OutboundSettings::default()
        };
        let Some(ChannelSettings::Waha(c)) =
            build(&inbox(InboxKind::Waha), &stored, Some(&defaults()), http())
        else {
            panic!("waha settings from the row")
        };
        assert_eq!(c.base_url.as_str(), "http://waha.row:3000/");
        assert!(
            c.api_key.is_none(),
            "the deployment's key stays with its server"
        );
    }

    #[test]
    fn graph_inboxes_need_a_token_and_default_base_and_version() {
        let mut stored = OutboundSettings::default();
        assert!(build(&inbox(InboxKind::Messenger), &stored, None, http()).is_none());
        stored.access_token = Some(Secret::new("tok"));
        let Some(ChannelSettings::Messenger(c)) =
            build(&inbox(InboxKind::Messenger), &stored, None, http())
        else {
            panic!("messenger")
        };
        assert_eq!(c.graph_base.as_str(), "https://graph.facebook.com/");
        assert_eq!(c.api_version, GRAPH_VERSION);
        let mut no_phone = inbox(InboxKind::WhatsappCloud);
        no_phone.phone_number_id = None;
        assert!(build(&no_phone, &stored, None, http()).is_none());
        let Some(ChannelSettings::WhatsappCloud(c)) =
            build(&inbox(InboxKind::WhatsappCloud), &stored, None, http())
        else {
            panic!("whatsapp cloud")
        };
        assert_eq!(c.phone_number_id, "1065");
    }

    #[test]
    fn email_needs_an_smtp_account_and_widget_nothing() {
        let mut stored = OutboundSettings::default();
        assert!(build(&inbox(InboxKind::Email), &stored, None, http()).is_none());
        stored.smtp = Some(SmtpAccount {
            host: "smtp.example".into(),
            port: 2525,
            security: super::super::SmtpSecurity::Plain,
            username: None,
            password: None,
            from: "support@example.com".into(),
        });
        assert!(matches!(
            build(&inbox(InboxKind::Email), &stored, None, http()),
            Some(ChannelSettings::Email(SmtpConfig { port: 2525, .. }))
        ));
        assert!(matches!(
            build(
                &inbox(InboxKind::Widget),
                &OutboundSettings::default(),
                None,
                http()
            ),
            Some(ChannelSettings::Widget)
        ));
    }
}
