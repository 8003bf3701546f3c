//! API keys per tenant, for every way in (gRPC metadata, HTTP headers of WHIP, `/v1` and the
//! telephony providers' secrets), checked before a handler runs (so an unknown caller never
//! costs a session slot or a model call). Keys come only from environment variables named in
//! the config; comparisons take constant time. `transport::grpc::auth` is tonic's glue.

use std::sync::Arc;

use crate::config::ServerConfig;

/// The tenant a request was authenticated as (in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

/// Tenant used when the daemon has no keys configured.
pub const OPEN_TENANT: &str = "default";

#[derive(Clone)]
pub struct ApiKeys {
    keys: Arc<Vec<(String, Vec<u8>)>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a key.
        f.debug_struct("ApiKeys")
            .field(
                "tenants",
                &self.keys.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ApiKeys {
    /// Reads every configured key from its environment variable (validated at start-up).
    pub fn from_config(cfg: &ServerConfig) -> Self {
        let keys = cfg
            .api_keys
            .iter()
            .filter_map(|k| {
                std::env::var(&k.key_env)
                    .ok()
                    .map(|v| (k.tenant.clone(), v.into_bytes()))
            })
            .collect();
        Self {
            keys: Arc::new(keys),
        }
    }

    /// Keys given directly, `(tenant, key)` (tests of the transports' glue).
    #[cfg(test)]
    pub(crate) fn for_tests(keys: &[(&str, &str)]) -> Self {
        Self {
            keys: Arc::new(
                keys.iter()
                    .map(|(t, k)| (t.to_string(), k.as_bytes().to_vec()))
                    .collect(),
            ),
        }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The tenant whose key `presented` is.
    pub fn tenant_of(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        // Compare against every key so that timing does not reveal which one matched.
        for (tenant, key) in self.keys.iter() {
            if constant_time_eq(key, presented) {
                found = Some(tenant.as_str());
            }
        }
        found
    }

    /// The tenant of a request's credentials: `authorization: Bearer <key>` or
    /// `x-api-key: <key>` (gRPC metadata or HTTP headers). The error is for the caller.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&[u8]>,
    ) -> Result<String, &'static str> {
        if self.is_open() {
            return Ok(OPEN_TENANT.into());
        }
        let presented = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|v| v.trim().as_bytes())
            .or(x_api_key);
        let Some(presented) = presented else {
            return Err("missing API key: send `authorization: Bearer <key>` or `x-api-key`");
        };
        self.tenant_of(presented)
            .map(str::to_string)
            .ok_or("invalid API key")
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys {
            keys: Arc::new(vec![
                ("acme".into(), b"key-acme-0123456789".to_vec()),
                ("bharat".into(), b"key-bharat-0123456789".to_vec()),
            ]),
        }
    }

    #[test]
    fn keys_map_to_tenants_from_either_header() {
        let k = keys();
        assert_eq!(
            k.authenticate(Some("Bearer key-bharat-0123456789"), None),
            Ok("bharat".to_string())
        );
        assert_eq!(
            k.authenticate(None, Some(b"key-acme-0123456789")),
            Ok("acme".to_string())
        );
        assert!(k.authenticate(None, None).is_err());
        assert!(k
            .authenticate(Some("Bearer key-acme-0123456780"), None)
            .is_err());
        assert!(format!("{k:?}").contains("acme") && !format!("{k:?}").contains("0123"));
        let open = ApiKeys {
            keys: Arc::new(Vec::new()),
        };
        assert_eq!(open.authenticate(None, None), Ok(OPEN_TENANT.to_string()));
    }
}
