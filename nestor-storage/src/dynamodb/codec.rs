//! Encodings shared by every table: semver sort keys, JSON bodies
//! (compressed when large) and typed access to item attributes.

use std::collections::HashMap;
use std::io::{Read, Write};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use nestor_core::{Error, Result};
use semver::Version;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The largest encoded body we write. DynamoDB refuses items over 400 KB;
/// the rest of the item (keys, summary attributes) stays well under the
/// 50 KB left over.
pub(crate) const MAX_BODY_BYTES: usize = 350 * 1024;

/// Bodies up to this size are stored as plain JSON strings (readable in the
/// console); larger ones are deflated into a binary attribute.
const COMPRESS_ABOVE: usize = 4 * 1024;

/// A decompressed body may not exceed this (a guard against a corrupted or
/// hostile item, far above any definition's 4 MiB file limit).
const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// A sort key whose byte order is semver precedence (SemVer 2.0 §11), so a
/// Query with `ScanIndexForward=false` returns newest first without reading
/// every version into memory first.
///
/// Layout: major, minor and patch as 20-digit decimals (every `u64` fits),
/// then `~` for a release or `-` and the encoded pre-release for a
/// pre-release (`-` < `~`, so a pre-release sorts before its release), then
/// ` ` and the build metadata when there is one. Each pre-release
/// identifier is `0` + 3-digit length + digits when numeric (numeric order,
/// below alphanumeric) or `1` + the text when alphanumeric (ASCII order);
/// identifiers are joined by `!`, which sorts below every identifier
/// character, so a shorter set of identifiers sorts first. The build
/// separator ` ` sorts below `!`, so build metadata never changes
/// precedence. The key is unique per `semver::Version` (build included);
/// readers still re-sort with `Version::cmp` to break ties between builds
/// exactly as the core does.
pub(crate) fn version_key(v: &Version) -> String {
    let mut key = format!("{:020}.{:020}.{:020}", v.major, v.minor, v.patch);
    if v.pre.is_empty() {
        key.push('~');
    } else {
        key.push('-');
        for (i, ident) in v.pre.as_str().split('.').enumerate() {
            if i > 0 {
                key.push('!');
            }
            if !ident.is_empty() && ident.bytes().all(|b| b.is_ascii_digit()) {
                key.push_str(&format!("0{:03}{ident}", ident.len()));
            } else {
                key.push('1');
                key.push_str(ident);
            }
        }
    }
    if !v.build.is_empty() {
        key.push(' ');
        key.push_str(v.build.as_str());
    }
    key
}

/// Serialises `value` as JSON: a string attribute when small, a deflated
/// binary attribute when large. Too large even compressed → `BAD_REQUEST`
/// naming `what`.
pub(crate) fn encode_body<T: Serialize>(what: &str, value: &T) -> Result<AttributeValue> {
    let json = serde_json::to_vec(value)
        .map_err(|e| Error::internal(format!("cannot serialise {what}: {e}")))?;
    if json.len() <= COMPRESS_ABOVE {
        let text = String::from_utf8(json)
            .map_err(|e| Error::internal(format!("{what}: JSON is not UTF-8: {e}")))?;
        return Ok(AttributeValue::S(text));
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&json)
        .and_then(|_| encoder.finish())
        .map_err(|e| Error::internal(format!("cannot compress {what}: {e}")))
        .and_then(|bytes| {
            if bytes.len() > MAX_BODY_BYTES {
                Err(Error::bad_request(format!(
                    "{what} is too large for the DynamoDB store: {} bytes of JSON compress to {} bytes, \
                     over the {} byte limit of one item",
                    json.len(),
                    bytes.len(),
                    MAX_BODY_BYTES
                )))
            } else {
                Ok(AttributeValue::B(Blob::new(bytes)))
            }
        })
}

/// The inverse of [`encode_body`].
pub(crate) fn decode_body<T: DeserializeOwned>(what: &str, value: &AttributeValue) -> Result<T> {
    let corrupt =
        |e: &dyn std::fmt::Display| Error::internal(format!("stored {what} is unreadable: {e}"));
    match value {
        AttributeValue::S(text) => serde_json::from_str(text).map_err(|e| corrupt(&e)),
        AttributeValue::B(blob) => {
            let mut json = Vec::new();
            flate2::read::ZlibDecoder::new(blob.as_ref())
                .take(MAX_INFLATED_BYTES)
                .read_to_end(&mut json)
                .map_err(|e| corrupt(&e))?;
            serde_json::from_slice(&json).map_err(|e| corrupt(&e))
        }
        _ => Err(corrupt(&"unexpected attribute type")),
    }
}

/// A string attribute.
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub(crate) fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Typed reads of an item's attributes; a missing or mistyped attribute is
/// an internal error naming the table, never a panic.
pub(crate) trait ItemExt {
    /// A required string attribute.
    fn str_attr(&self, key: &str) -> Result<&str>;
    /// An optional string attribute.
    fn opt_str(&self, key: &str) -> Option<&str>;
    /// A required unsigned number attribute.
    fn u64_attr(&self, key: &str) -> Result<u64>;
    /// A required signed number attribute.
    fn i64_attr(&self, key: &str) -> Result<i64>;
    /// An optional signed number attribute (0 when absent).
    fn i64_or_zero(&self, key: &str) -> i64;
    /// An optional boolean attribute (false when absent).
    fn bool_attr(&self, key: &str) -> bool;
    /// A required attribute of any type.
    fn attr(&self, key: &str) -> Result<&AttributeValue>;
}

impl ItemExt for Item {
    fn str_attr(&self, key: &str) -> Result<&str> {
        self.opt_str(key)
            .ok_or_else(|| Error::internal(format!("stored item lacks string attribute {key}")))
    }

    fn opt_str(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    fn u64_attr(&self, key: &str) -> Result<u64> {
        self.get(key)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::internal(format!("stored item lacks number attribute {key}")))
    }

    fn i64_attr(&self, key: &str) -> Result<i64> {
        self.get(key)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::internal(format!("stored item lacks number attribute {key}")))
    }

    fn i64_or_zero(&self, key: &str) -> i64 {
        self.get(key)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn bool_attr(&self, key: &str) -> bool {
        self.get(key)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false)
    }

    fn attr(&self, key: &str) -> Result<&AttributeValue> {
        self.get(key)
            .ok_or_else(|| Error::internal(format!("stored item lacks attribute {key}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_like_semver() {
        let mut versions: Vec<Version> = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.0+build.5",
            "1.2.0",
            "1.9.0",
            "1.10.0",
            "2.0.0-0",
            "2.0.0-a-b",
            "2.0.0",
            "10.0.0",
        ]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
        let expected = versions.clone();
        versions.reverse();
        versions.sort_by_key(version_key);
        assert_eq!(versions, expected);
    }

    #[test]
    fn bodies_round_trip_small_and_large() {
        let small = serde_json::json!({"a": 1});
        assert!(matches!(
            encode_body("x", &small).unwrap(),
            AttributeValue::S(_)
        ));
        let large = serde_json::json!({"text": "abc ".repeat(10_000)});
        let encoded = encode_body("x", &large).unwrap();
        assert!(matches!(encoded, AttributeValue::B(_)));
        let back: serde_json::Value = decode_body("x", &encoded).unwrap();
        assert_eq!(back, large);
    }

    #[test]
    fn incompressible_huge_bodies_are_bad_requests() {
        // Pseudo-random text does not compress well.
        let mut x: u64 = 1;
        let noise: String = (0..600_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(b'!' + ((x >> 33) % 90) as u8)
            })
            .collect();
        let err = encode_body("definition", &serde_json::json!({ "noise": noise })).unwrap_err();
        assert_eq!(err.code(), nestor_core::ErrorCode::BadRequest);
    }
}
