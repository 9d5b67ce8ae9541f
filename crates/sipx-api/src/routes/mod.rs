//! Handlers, one file per resource. Each file holds the resource's DTOs next to its handlers:
//! the wire shape of an object and the code serving it change together.

pub mod app;
pub mod apps;
pub mod calls;
pub mod codecs;
pub mod events;
pub mod number_rules;
pub mod ops;
pub mod registrations;
pub mod rooms;
pub mod routing_rules;
pub mod sip_accounts;
pub(crate) mod sip_claims;
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

/// A nested object that must be written as one. serde's derive also reads a struct (and an
/// internally tagged enum) from an array of its fields in order, which no client means and the
/// schema does not allow; like the top level (`extract::ApiJson`), such a field refuses it.
fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let value = serde_json::Value::deserialize(d)?;
    if !value.is_object() {
        return Err(D::Error::custom("expected an object"));
    }
    serde_json::from_value(value).map_err(D::Error::custom)
}

/// A PATCH field that cannot be cleared: absent keeps the value (with `default`), and `null`
/// is refused, since a client sending it means "clear" and nothing would be.
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::Error;
    Option::<T>::deserialize(d)?
        .map(Some)
        .ok_or_else(|| D::Error::custom(NOT_NULL))
}

const NOT_NULL: &str = "null clears nothing here: leave the field out to keep its value";

/// [`object`] for a PATCH field that cannot be cleared (see [`not_null`]).
fn object_not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    object_or_null(d)?
        .map(Some)
        .ok_or_else(|| D::Error::custom(NOT_NULL))
}

/// [`object`] for an optional field: `null` is `None`.
fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        value if value.is_object() => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom("expected an object or null")),
    }
}
