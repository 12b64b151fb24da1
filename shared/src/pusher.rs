//! Pusher Channels private-channel signatures, shared by the API (which signs a client's
//! subscription to its own tenant's channel) and the gateway (which checks it).
//! `auth` = `key:hex(HMAC-SHA256(secret, "socket_id:channel"))`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{Secret, env_or};

/// The Pusher app clients connect with: `PUSHER_APP_KEY`, `PUSHER_APP_SECRET`.
#[derive(Clone, Debug)]
pub struct PusherApp {
    pub key: String,
    pub secret: Secret,
}

impl PusherApp {
    pub fn from_env() -> Self {
        Self {
            key: env_or("PUSHER_APP_KEY", "switchyard"),
            secret: Secret::new(env_or("PUSHER_APP_SECRET", "switchyard-dev-secret")),
        }
    }

    pub fn sign(&self, socket_id: &str, channel: &str) -> String {
        sign(&self.key, self.secret.expose(), socket_id, channel)
    }
}

pub fn sign(key: &str, secret: &str, socket_id: &str, channel: &str) -> String {
    format!("{key}:{}", hex::encode(mac(secret, socket_id, channel)))
}

fn mac(secret: &str, socket_id: &str, channel: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(format!("{socket_id}:{channel}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks `auth` in constant time.
pub fn verify(key: &str, secret: &str, socket_id: &str, channel: &str, auth: &str) -> bool {
    let Some((given_key, signature)) = auth.split_once(':') else {
        return false;
    };
    let Ok(given) = hex::decode(signature) else {
        return false;
    };
    given_key == key && bool::from(given.ct_eq(&mac(secret, socket_id, channel)))
}

/// Channel names in Pusher's alphabet, at most 200 characters.
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
}

/// Socket ids as Pusher issues them: `digits.digits`.
pub fn valid_socket_id(id: &str) -> bool {
    id.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.len() <= 20
            && b.len() <= 20
            && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pusher_documented_signature_and_tampering() {
        // The example of Pusher's private-channel authentication docs.
        let auth = sign(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
        );
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert!(verify(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
            &auth
        ));
        assert!(!verify(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1235",
            "private-foobar",
            &auth
        ));
        assert!(!verify(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
            "x:zz"
        ));
    }

    #[test]
    fn names_and_socket_ids() {
        assert!(valid_channel_name("private-tenant.t_1.session.01HXYZ"));
        assert!(!valid_channel_name("private-tenant.t 1"));
        assert!(!valid_channel_name(&"a".repeat(201)));
        assert!(valid_socket_id("123.456"));
        for bad in ["", "123", "a.1", "1.", ".1", "1.2.3"] {
            assert!(!valid_socket_id(bad), "{bad}");
        }
    }
}
