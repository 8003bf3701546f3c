//! Per-tenant request rates (`[[server.api_keys]] requests_per_minute`): a token bucket per
//! tenant, refilled continuously, holding at most a sixth of a minute's requests, so a tenant
//! can burst a little but not take the box from the others. Checked at admission, before a
//! conversation or a one-off request is given a slot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ServerConfig;

struct Bucket {
    per_minute: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn capacity(&self) -> f64 {
        (self.per_minute / 6.0).max(1.0)
    }

    /// Takes one request at `now`, or says how long until one is allowed.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let per_s = self.per_minute / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_s).min(self.capacity());
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_s))
        }
    }
}

/// The buckets of every tenant that has a limit.
pub struct RateLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimits {
    pub fn from_config(cfg: &ServerConfig) -> Self {
        let now = Instant::now();
        let buckets = cfg
            .api_keys
            .iter()
            .filter_map(|k| {
                let per_minute = f64::from(k.requests_per_minute?);
                let mut b = Bucket {
                    per_minute,
                    tokens: 0.0,
                    updated: now,
                };
                b.tokens = b.capacity();
                Some((k.tenant.clone(), b))
            })
            .collect();
        Self {
            buckets: Mutex::new(buckets),
        }
    }

    /// One request of `tenant` now: `Err(wait)` if its rate is used up.
    pub fn check(&self, tenant: &str) -> Result<(), Duration> {
        self.check_at(tenant, Instant::now())
    }

    fn check_at(&self, tenant: &str, now: Instant) -> Result<(), Duration> {
        // Plain counters: a panic elsewhere cannot leave them torn.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.get_mut(tenant) {
            Some(b) => b.take(now),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyConfig;

    fn limits(per_minute: u32) -> RateLimits {
        let cfg = ServerConfig {
            api_keys: vec![
                ApiKeyConfig {
                    tenant: "bank".into(),
                    key_env: "UNUSED".into(),
                    requests_per_minute: Some(per_minute),
                },
                ApiKeyConfig {
                    tenant: "free".into(),
                    key_env: "UNUSED".into(),
                    requests_per_minute: None,
                },
            ],
            ..ServerConfig::default()
        };
        RateLimits::from_config(&cfg)
    }

    #[test]
    fn a_tenant_bursts_a_sixth_of_its_minute_then_waits_for_the_refill() {
        let l = limits(60);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(l.check_at("bank", t0).is_ok());
        }
        let wait = l.check_at("bank", t0).expect_err("the burst is spent");
        assert!((wait.as_secs_f64() - 1.0).abs() < 0.01, "{wait:?}");
        // One request a second comes back.
        assert!(l
            .check_at("bank", t0 + Duration::from_millis(1_001))
            .is_ok());
        assert!(l
            .check_at("bank", t0 + Duration::from_millis(1_002))
            .is_err());
        // Others are not affected.
        for _ in 0..100 {
            assert!(l.check_at("free", t0).is_ok());
            assert!(l.check_at("someone-else", t0).is_ok());
        }
    }

    #[test]
    fn a_slow_tenant_still_gets_one_request() {
        let l = limits(1);
        let t0 = Instant::now();
        assert!(l.check_at("bank", t0).is_ok());
        let wait = l.check_at("bank", t0).expect_err("one a minute");
        assert!((wait.as_secs_f64() - 60.0).abs() < 0.1, "{wait:?}");
    }
}
