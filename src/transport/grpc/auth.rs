//! API keys per tenant, checked from request metadata before a handler runs (so an unknown
//! caller never costs a session slot or a model call). Keys come only from environment
//! variables named in the config; comparisons take constant time.

use std::sync::Arc;

use tonic::{Request, Status};

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

    /// The interceptor: `authorization: Bearer <key>` or `x-api-key: <key>`.
    pub fn check<T>(&self, mut req: Request<T>) -> Result<Request<T>, Status> {
        let md = req.metadata();
        let tenant = self
            .authenticate(
                md.get("authorization").and_then(|v| v.to_str().ok()),
                md.get("x-api-key").map(|v| v.as_bytes()),
            )
            .map_err(Status::unauthenticated)?;
        req.extensions_mut().insert(Tenant(tenant));
        Ok(req)
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tenant of an authenticated request (the interceptor always sets it).
pub fn tenant_of<T>(req: &Request<T>) -> Result<String, Status> {
    req.extensions()
        .get::<Tenant>()
        .map(|t| t.0.clone())
        .ok_or_else(|| Status::internal("request passed no authentication layer"))
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
    fn keys_map_to_tenants() {
        let k = keys();
        let mut r = Request::new(());
        r.metadata_mut().insert(
            "authorization",
            "Bearer key-bharat-0123456789".parse().unwrap(),
        );
        let r = k.check(r).unwrap();
        assert_eq!(tenant_of(&r).unwrap(), "bharat");
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("x-api-key", "key-acme-0123456789".parse().unwrap());
        assert_eq!(tenant_of(&k.check(r).unwrap()).unwrap(), "acme");
    }

    #[test]
    fn missing_or_wrong_keys_are_unauthenticated() {
        let k = keys();
        let e = k.check(Request::new(())).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let mut r = Request::new(());
        r.metadata_mut().insert(
            "authorization",
            "Bearer key-acme-0123456780".parse().unwrap(),
        );
        assert_eq!(k.check(r).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert!(format!("{k:?}").contains("acme") && !format!("{k:?}").contains("0123"));
    }
}
