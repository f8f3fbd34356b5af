//! [`Shared`]: how the catalog read traits hand out records — one copy,
//! shared by the store's cache and every reader, with its JSON written at
//! most once.
//!
//! A catalog record is read far more often than it changes, and each store
//! keeps the records it reads (the SQLite and DynamoDB caches, the memory
//! store's maps). Returned by value, every read deep-copied the definition
//! out of the cache, and the HTTP API then serialised that copy again (about
//! 1 KB per record): a fifth of the server's CPU on `GET /resources/{name}`
//! (benches/README.md). A `Shared` is an `Arc` of the value beside its JSON
//! text, filled by the first caller of [`Shared::json`]: a read costs a
//! reference count, and every answer after the first sends the same bytes.
//!
//! The value is immutable behind the `Arc`, so the JSON never goes stale: a
//! store that changes a record (a yank) makes a new `Shared`.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A read-only value shared between a store and its readers, and its JSON
/// computed once. Dereferences to the value; clones share it. Serialises,
/// compares and prints as the value itself.
pub struct Shared<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    value: T,
    /// `serde_json::to_vec(&value)`, once someone asked for it.
    json: OnceLock<Box<[u8]>>,
}

impl<T> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        Shared {
            inner: Arc::new(Inner {
                value,
                json: OnceLock::new(),
            }),
        }
    }

    /// The value itself, copied only if another handle still shares it.
    pub fn into_inner(self) -> T
    where
        T: Clone,
    {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.value,
            Err(shared) => shared.value.clone(),
        }
    }

    /// Whether both handles share one value (not merely equal ones).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

/// The schema of a `Shared<T>` is `T`'s: it serialises as the value.
#[cfg(feature = "schema")]
impl<T: schemars::JsonSchema> schemars::JsonSchema for Shared<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl<T: Serialize> Shared<T> {
    /// The value as JSON — the bytes `serde_json::to_vec` gives — written
    /// by the first caller and kept for every later one.
    pub fn json(&self) -> serde_json::Result<&[u8]> {
        if let Some(json) = self.inner.json.get() {
            return Ok(json);
        }
        let json = serde_json::to_vec(&self.inner.value)?.into_boxed_slice();
        // Two first callers may both serialise; they write the same bytes.
        Ok(self.inner.json.get_or_init(|| json))
    }

    /// [`Shared::json`] as an owned handle on the bytes that keeps the
    /// value alive: an HTTP body can send it without copying
    /// (`bytes::Bytes::from_owner`).
    pub fn json_bytes(&self) -> serde_json::Result<SharedJson>
    where
        T: Send + Sync + 'static,
    {
        self.json()?;
        Ok(SharedJson {
            inner: Arc::clone(&self.inner) as Arc<dyn JsonText>,
        })
    }
}

/// The JSON of a [`Shared`] value, owning a reference to it. `AsRef<[u8]>`
/// gives the bytes.
#[derive(Clone)]
pub struct SharedJson {
    inner: Arc<dyn JsonText>,
}

/// What [`SharedJson`] needs of a [`Shared`]'s inside, whatever its `T`.
trait JsonText: Send + Sync {
    fn text(&self) -> &[u8];
}

impl<T: Send + Sync> JsonText for Inner<T> {
    fn text(&self) -> &[u8] {
        // `SharedJson` is only made after the JSON was written.
        self.json.get().map_or(&[], |j| j)
    }
}

impl AsRef<[u8]> for SharedJson {
    fn as_ref(&self) -> &[u8] {
        self.inner.text()
    }
}

impl fmt::Debug for SharedJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedJson")
            .field(&String::from_utf8_lossy(self.as_ref()))
            .finish()
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner.value
    }
}

impl<T> AsRef<T> for Shared<T> {
    fn as_ref(&self) -> &T {
        &self.inner.value
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Shared::ptr_eq(self, other) || self.inner.value == other.inner.value
    }
}

impl<T: PartialEq> PartialEq<T> for Shared<T> {
    fn eq(&self, other: &T) -> bool {
        self.inner.value == *other
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.value.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Record {
        name: String,
        size: u32,
    }

    fn record() -> Shared<Record> {
        Shared::new(Record {
            name: "db".into(),
            size: 3,
        })
    }

    #[test]
    fn its_json_is_the_values_and_is_written_once() {
        let shared = record();
        let first = shared.json().unwrap();
        assert_eq!(first, serde_json::to_vec(&*shared).unwrap().as_slice());
        let again = shared.clone().json().unwrap().as_ptr();
        assert_eq!(first.as_ptr(), again, "a clone answers with the same bytes");
        let bytes = shared.json_bytes().unwrap();
        drop(shared);
        assert_eq!(bytes.as_ref(), br#"{"name":"db","size":3}"#);
    }

    #[test]
    fn serialises_compares_and_round_trips_as_the_value() {
        let shared = record();
        assert_eq!(
            serde_json::to_string(&shared).unwrap(),
            serde_json::to_string(&*shared).unwrap()
        );
        let back: Shared<Record> =
            serde_json::from_slice(shared.json().unwrap()).expect("reads back");
        assert_eq!(back, shared);
        assert!(!Shared::ptr_eq(&back, &shared));
        assert_eq!(format!("{shared:?}"), format!("{:?}", *shared));
    }

    #[test]
    fn into_inner_moves_when_alone_and_copies_when_shared() {
        let shared = record();
        let other = shared.clone();
        assert_eq!(shared.into_inner().size, 3);
        assert_eq!(other.into_inner().name, "db");
    }
}
