//! tonic's side of the API keys ([`crate::transport::auth`]): the interceptor that checks a
//! request's metadata and records its tenant, and the tenant of an authenticated request.

use tonic::{Request, Status};

use crate::transport::auth::{ApiKeys, Tenant};

/// The interceptor: `authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn check<T>(keys: &ApiKeys, mut req: Request<T>) -> Result<Request<T>, Status> {
    let md = req.metadata();
    let tenant = keys
        .authenticate(
            md.get("authorization").and_then(|v| v.to_str().ok()),
            md.get("x-api-key").map(|v| v.as_bytes()),
        )
        .map_err(Status::unauthenticated)?;
    req.extensions_mut().insert(Tenant(tenant));
    Ok(req)
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
        ApiKeys::for_tests(&[
            ("acme", "key-acme-0123456789"),
            ("bharat", "key-bharat-0123456789"),
        ])
    }

    #[test]
    fn keys_map_to_tenants() {
        let k = keys();
        let mut r = Request::new(());
        r.metadata_mut().insert(
            "authorization",
            "Bearer key-bharat-0123456789".parse().unwrap(),
        );
        let r = check(&k, r).unwrap();
        assert_eq!(tenant_of(&r).unwrap(), "bharat");
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("x-api-key", "key-acme-0123456789".parse().unwrap());
        assert_eq!(tenant_of(&check(&k, r).unwrap()).unwrap(), "acme");
    }

    #[test]
    fn missing_or_wrong_keys_are_unauthenticated() {
        let k = keys();
        let e = check(&k, Request::new(())).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let mut r = Request::new(());
        r.metadata_mut().insert(
            "authorization",
            "Bearer key-acme-0123456780".parse().unwrap(),
        );
        assert_eq!(
            check(&k, r).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
