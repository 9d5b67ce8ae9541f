//! Handlers, one file per resource. Each file holds the resource's DTOs next to its handlers:
//! the wire shape of an object and the code serving it change together.

pub mod app;
pub mod apps;
pub mod events;
pub mod ops;
pub mod registrations;
pub mod rooms;
pub mod sip_accounts;
pub mod srtp;
pub mod trunks;
pub mod web;
pub mod webhooks;

use serde::{Deserialize, Deserializer};

/// Tells "absent" (outer `None`, via `default`) from "null" (`Some(None)`) in PATCH bodies.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
