//! Sessions across connections and transports: [`service`] opens them for every transport
//! (admission, per-tenant rates in [`rate`], tenants, resume, take-over, delete) and [`store`]
//! keeps their conversations (SQLite or PostgreSQL) between reconnects.

pub mod rate;
pub mod service;
pub mod store;
