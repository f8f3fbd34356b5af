//! A YAML document read into a JSON value tree exactly as a JSON body
//! would be: serde_json reads an integer beyond 64 bits as the nearest
//! float, so the YAML reader does the same instead of refusing the
//! document ("JSON number out of range"). A value is a value, whichever of
//! the two formats the request body (or the catalog file) uses.
//!
//! The tree is also where the depth limit holds for nesting the
//! pre-scan lets through (`limits` says which): a collection deeper than
//! [`MAX_DEPTH`] is refused as it is built, so no value tree deeper than
//! that ever exists.

use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::limits::MAX_DEPTH;

/// A [`Value`] deserialised with [`JsonVisitor`].
pub(super) struct YamlValue(pub(super) Value);

impl<'de> Deserialize<'de> for YamlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Nested(0).deserialize(d).map(YamlValue)
    }
}

/// A value inside this many collections.
#[derive(Clone, Copy)]
struct Nested(usize);

impl<'de> DeserializeSeed<'de> for Nested {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(JsonVisitor(self.0))
    }
}

/// serde_json's own value visitor, but for 128-bit integers, building a
/// value inside this many collections.
struct JsonVisitor(usize);

impl JsonVisitor {
    /// The depth of a collection this visitor builds, or the error if that
    /// is deeper than [`MAX_DEPTH`].
    fn inner<E: Error>(&self) -> Result<Nested, E> {
        if self.0 >= MAX_DEPTH {
            // The YAML library appends where the collection starts.
            return Err(E::custom(format_args!(
                "the document nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Nested(self.0 + 1))
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(match i64::try_from(v) {
            Ok(small) => Value::Number(small.into()),
            Err(_) => float(v as f64),
        })
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(match u64::try_from(v) {
            Ok(small) => Value::Number(small.into()),
            Err(_) => float(v as f64),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Nested(self.0).deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            fields.insert(key, map.next_value_seed(inner)?);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Value {
        serde_yaml::from_str::<YamlValue>(text).unwrap().0
    }

    #[test]
    fn reads_what_serde_json_reads_from_json() {
        for text in [
            r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": 18446744073709551615}}"#,
            r#"{"big": 1180591620717411303424, "small": -1180591620717411303424}"#,
        ] {
            let json: Value = serde_json::from_str(text).unwrap();
            assert_eq!(read(text), json, "{text}");
        }
    }

    #[test]
    fn within_64_bits_it_answers_what_serde_json_value_answers() {
        for text in [
            "a: ~\nb: [x, 2, -3, 4.5, .inf]\nc: {d: yes}\n",
            "a: 1\na: 2\n",
            "? [1, 2]\n: x\n",
            "1: one\n",
            "!tag x\n",
        ] {
            let ours = serde_yaml::from_str::<YamlValue>(text).map(|v| v.0).ok();
            let theirs = serde_yaml::from_str::<Value>(text).ok();
            assert_eq!(ours, theirs, "{text}");
        }
    }
}
