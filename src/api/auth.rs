//! Who a request acts for: keys are kept only as SHA-256 digests and compared in
//! constant time; every key belongs to one tenant and is either an event key (may only
//! send events) or an API key (the `/v1` API).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::TenantConfig;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// May only `POST /e/{key}`.
    Event,
    /// May use the `/v1` API.
    Api,
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key was presented.
    #[error("missing key: send Authorization: Bearer <key>")]
    Missing,
    /// The key (or session) is not known.
    #[error("unknown key")]
    Unknown,
    /// The session has expired: log in again.
    #[error("the session has expired: log in again")]
    Expired,
    /// The key is known but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
}

/// How long a browser session lasts (ms).
pub const SESSION_MS: i64 = 12 * 3600 * 1000;

/// Browser sessions: a token's digest → its tenant and expiry (ms since epoch). Kept in
/// memory: a restart logs everyone out.
type Sessions = Arc<Mutex<HashMap<[u8; 32], (String, i64)>>>;

/// The key ring, or the open single tenant of `weir dev`, and the sessions logged in
/// with an API key.
#[derive(Debug, Clone)]
pub struct Auth {
    open: Option<String>,
    keys: Vec<([u8; 32], String, KeyKind)>,
    sessions: Sessions,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Auth {
    /// Every request acts for `tenant`, with or without a key.
    pub fn open(tenant: &str) -> Self {
        Self {
            open: Some(tenant.into()),
            keys: Vec::new(),
            sessions: Sessions::default(),
        }
    }

    /// Keys of configured tenants (a key may be given as `sha256:<hex>` of itself).
    pub fn from_tenants(tenants: &[TenantConfig]) -> Self {
        let mut keys = Vec::new();
        for t in tenants {
            for (list, kind) in [(&t.event_keys, KeyKind::Event), (&t.api_keys, KeyKind::Api)] {
                for k in list {
                    let d = k
                        .strip_prefix("sha256:")
                        .and_then(|h| hex::decode(h).ok())
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .unwrap_or_else(|| digest(k));
                    keys.push((d, t.id.clone(), kind));
                }
            }
        }
        Self {
            open: None,
            keys,
            sessions: Sessions::default(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (String, i64)>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs in with an API key: a new session token (random, 256 bits) for its tenant,
    /// valid for [`SESSION_MS`] from `now`. Only the token's digest is kept.
    pub fn login(&self, api_key: &str, now: i64) -> Result<(String, String), AuthError> {
        let tenant = self.api_tenant(Some(api_key))?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut s = self.sessions();
        s.retain(|_, (_, exp)| *exp > now);
        s.insert(digest(&token), (tenant.clone(), now + SESSION_MS));
        Ok((token, tenant))
    }

    /// The tenant of a live session.
    pub fn session_tenant(&self, token: &str, now: i64) -> Result<String, AuthError> {
        match self.sessions().get(&digest(token)) {
            Some((t, exp)) if *exp > now => Ok(t.clone()),
            Some(_) => Err(AuthError::Expired),
            None => Err(AuthError::Unknown),
        }
    }

    /// Ends a session (an unknown one is ignored).
    pub fn logout(&self, token: &str) {
        self.sessions().remove(&digest(token));
    }

    /// Whether this is the open single-tenant mode.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The tenant and kind of a presented key. Every stored digest is compared, in
    /// constant time, so the time taken says nothing about which key came close.
    pub fn resolve(&self, presented: Option<&str>) -> Result<(String, KeyKind), AuthError> {
        if let Some(t) = &self.open {
            return Ok((t.clone(), KeyKind::Api));
        }
        let key = presented
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Missing)?;
        let d = digest(key);
        let mut found = None;
        for (stored, tenant, kind) in &self.keys {
            if bool::from(stored.ct_eq(&d)) {
                found = Some((tenant.clone(), *kind));
            }
        }
        found.ok_or(AuthError::Unknown)
    }

    /// The tenant an API request acts for.
    pub fn api_tenant(&self, presented: Option<&str>) -> Result<String, AuthError> {
        match self.resolve(presented)? {
            (t, KeyKind::Api) => Ok(t),
            (_, KeyKind::Event) => Err(AuthError::Forbidden(
                "an event key can only send events (POST /e/{key}); use an API key",
            )),
        }
    }

    /// The tenant an event request sends to.
    pub fn event_tenant(&self, presented: Option<&str>) -> Result<String, AuthError> {
        if let Some(t) = &self.open {
            return Ok(t.clone());
        }
        match self.resolve(presented)? {
            (t, KeyKind::Event) => Ok(t),
            (_, KeyKind::Api) => Err(AuthError::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Auth {
        Auth::from_tenants(&[
            TenantConfig {
                id: "a".into(),
                event_keys: vec!["evt_a_123".into()],
                api_keys: vec!["api_a_123".into()],
                max_concurrent_steps: None,
                signing_key: None,
            },
            TenantConfig {
                id: "b".into(),
                event_keys: vec![],
                api_keys: vec![format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(b"api_b_secret"))
                )],
                max_concurrent_steps: None,
                signing_key: None,
            },
        ])
    }

    #[test]
    fn keys_resolve_to_their_tenant_and_kind() {
        let r = ring();
        assert_eq!(r.api_tenant(Some("api_a_123")), Ok("a".into()));
        assert_eq!(r.event_tenant(Some("evt_a_123")), Ok("a".into()));
        assert_eq!(
            r.api_tenant(Some("api_b_secret")),
            Ok("b".into()),
            "hashed keys in the config work"
        );
        assert!(matches!(
            r.api_tenant(Some("evt_a_123")),
            Err(AuthError::Forbidden(_))
        ));
        assert_eq!(r.event_tenant(Some("api_a_123")), Err(AuthError::Unknown));
        assert_eq!(r.api_tenant(Some("nope")), Err(AuthError::Unknown));
        assert_eq!(r.api_tenant(None), Err(AuthError::Missing));
        assert_eq!(Auth::open("default").api_tenant(None), Ok("default".into()));
    }

    #[test]
    fn sessions_need_an_api_key_and_expire() {
        let r = ring();
        assert_eq!(
            r.login("evt_a_123", 0).map(|_| ()),
            Err(AuthError::Forbidden(
                "an event key can only send events (POST /e/{key}); use an API key"
            ))
        );
        assert_eq!(r.login("nope", 0).map(|_| ()), Err(AuthError::Unknown));
        let (token, tenant) = r.login("api_a_123", 1_000).unwrap();
        assert_eq!((tenant.as_str(), token.len()), ("a", 64));
        assert_eq!(r.session_tenant(&token, 2_000), Ok("a".into()));
        assert_eq!(
            r.session_tenant(&token, 1_000 + SESSION_MS),
            Err(AuthError::Expired)
        );
        let (other, _) = r.login("api_b_secret", 1_000).unwrap();
        assert_ne!(token, other);
        r.logout(&token);
        assert_eq!(r.session_tenant(&token, 2_000), Err(AuthError::Unknown));
        assert_eq!(r.session_tenant(&other, 2_000), Ok("b".into()));
    }
}
