//! A JSON value whose objects name each key once. RFC 8259 §4 leaves a repeated key's meaning
//! to the reader: serde_json keeps the last one, while a proxy or firewall in front may check
//! the first. A body that says two things is refused instead of read one way.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Deserializes like [`Value`], failing on an object that repeats a key.
pub(crate) struct UniqueKeys(pub Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(UniqueKeys)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so every number it gives is finite.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    // JSON's null (serde_json gives it as unit, never as an option).
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Value, String> {
        serde_json::from_str::<UniqueKeys>(text)
            .map(|v| v.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a": 1, "b": [true, null, -2, 3.5, "x\u00e9"], "c": {"d": {}}, "e": []}"#,
            "18446744073709551615",
            "-9223372036854775808",
            r#""\ud83d\ude00""#,
            "1e300",
        ] {
            assert_eq!(
                read(text),
                Ok(serde_json::from_str(text).unwrap()),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth() {
        for text in [
            r#"{"name": "a", "name": "b"}"#,
            r#"{"x": {"k": 1, "k": 1}}"#,
            r#"[{"k": 1}, {"k": 2, "\u006b": 3}]"#,
        ] {
            let error = read(text).unwrap_err();
            assert!(error.contains("duplicate key"), "{text}: {error}");
        }
        // The same key in two objects is no repeat.
        assert!(read(r#"[{"k": 1}, {"k": 2}]"#).is_ok());
    }

    #[test]
    fn nesting_stays_bounded() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(read(&deep).unwrap_err().contains("recursion limit"));
    }
}
