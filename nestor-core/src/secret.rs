//! Sensitive inputs by reference: the only form a value of an input (or a
//! composition parameter) marked `sensitive: true` may take.
//!
//! A secret never travels through Nestor: it would land in the GitOps
//! repository (and its history, forever), the store, the events and the
//! plan diff. A sensitive value is instead *where the secret is*, and each
//! engine renders what its tool resolves at run time:
//!
//! ```yaml
//! # a key of a Kubernetes Secret, in the deployment's namespace
//! password: {secret_ref: {name: checkout-db, key: password}}
//! # a path in an external store, synced into the namespace by the
//! # External Secrets Operator through a (Cluster)SecretStore of that name
//! password: {secret_ref: {store: vault, path: secret/data/checkout/db, key: password}}
//! ```
//!
//! [`check_sensitive`] is the one rule, called by [`crate::check_value`]
//! for every sensitive value: definition defaults, composition parameters
//! and literal configs at publish, request parameters and rendered inputs
//! at plan and apply (annotations and the deployment file become request
//! parameters, so they meet the same rule).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{InputReference, Reach};
use crate::error::FieldError;

/// The `producer_engine` of an [`InputReference`] that is a secret
/// reference rather than another resource's output: engines that tell the
/// two apart (a Crossplane `*SecretRef` parameter) look for it.
pub const SECRET_REF_ENGINE: &str = "secret-ref";

/// Where a sensitive value is found at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    /// A key of an existing Kubernetes Secret.
    Kubernetes {
        /// The Secret's name.
        name: String,
        /// The key inside it.
        key: String,
        /// Its namespace; default: the deployment's (the team's namespace
        /// in the environment), the only one its pods can read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// A path in an external secret store, materialised in the
    /// deployment's namespace by the External Secrets Operator.
    External {
        /// The name of the `ClusterSecretStore` to read through.
        store: String,
        /// The secret's path (or name) in that store.
        path: String,
        /// The property inside the secret; default: the whole value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
}

/// The explanation a literal sensitive value is refused with.
pub const REFERENCE_FORM: &str = "a sensitive value is never given literally (it would be stored, \
     committed to the GitOps repository and shown in plans): give where it is instead, \
     {secret_ref: {name: SECRET, key: KEY}} for a key of a Kubernetes Secret in the deployment's namespace, \
     or {secret_ref: {store: STORE, path: PATH, key: KEY}} for a path in an external secret store";

impl SecretRef {
    /// The reference a value holds, if it is exactly `{secret_ref: {...}}`.
    pub fn from_value(value: &Value) -> Option<SecretRef> {
        let map = value.as_object().filter(|m| m.len() == 1)?;
        let inner = map.get("secret_ref").or_else(|| map.get("secretRef"))?;
        let parsed: SecretRef = serde_json::from_value(inner.clone()).ok()?;
        let fields_known = inner.as_object().is_some_and(|m| {
            m.keys()
                .all(|k| ["name", "key", "namespace", "store", "path"].contains(&k.as_str()))
        });
        (fields_known && parsed.is_well_formed()).then_some(parsed)
    }

    fn is_well_formed(&self) -> bool {
        let label = |s: &str| crate::validate::is_dns_subdomain(s);
        match self {
            SecretRef::Kubernetes {
                name,
                key,
                namespace,
            } => label(name) && is_secret_key(key) && namespace.as_deref().is_none_or(label),
            SecretRef::External { store, path, key } => {
                label(store) && !path.trim().is_empty() && key.as_deref().is_none_or(is_secret_key)
            }
        }
    }

    /// The value as requests and compositions carry it.
    pub fn to_value(&self) -> Value {
        serde_json::json!({ "secret_ref": self })
    }

    /// The Kubernetes Secret key the tools read, for a resource whose
    /// objects are called `object_name` in `namespace`, input `input`: the
    /// Secret itself, or the one the External Secrets Operator writes.
    pub fn secret_key(&self, namespace: &str, object_name: &str, input: &str) -> Reach {
        match self {
            SecretRef::Kubernetes {
                name,
                key,
                namespace: ns,
            } => Reach::secret_key(name, ns.as_deref().unwrap_or(namespace), key),
            SecretRef::External { .. } => {
                Reach::secret_key(external_secret_name(object_name), namespace, input)
            }
        }
    }
}

/// The name of the Secret the External Secrets Operator writes a
/// resource's external references into.
pub fn external_secret_name(object_name: &str) -> String {
    format!("{object_name}-secrets")
}

/// A Secret key: `[-._a-zA-Z0-9]+`, as Kubernetes allows.
fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// The rule for a sensitive value: a well-formed `{secret_ref: ...}` passes
/// (its shape is the reference's, not the input's type); anything else is
/// refused with [`REFERENCE_FORM`], the value never quoted.
pub fn check_sensitive(value: &Value, path: &str) -> Option<FieldError> {
    if SecretRef::from_value(value).is_some() {
        return None;
    }
    let looks_like_ref = value
        .as_object()
        .is_some_and(|m| m.contains_key("secret_ref") || m.contains_key("secretRef"));
    let message = if looks_like_ref {
        format!(
            "the secret reference is malformed (names are DNS labels, a key is [-._a-zA-Z0-9]+, \
             and only name, key, namespace, store and path are known): {REFERENCE_FORM}"
        )
    } else {
        REFERENCE_FORM.to_string()
    };
    Some(FieldError::new(path, message))
}

/// The reference the engine of a resource receives for sensitive input
/// `input` given as `secret`, with the input's value replaced by the
/// reach (the same shape as another resource's output).
pub fn secret_input_reference(
    input: &str,
    input_type: &str,
    secret: &SecretRef,
    namespace: &str,
    object_name: &str,
) -> InputReference {
    let reach = secret.secret_key(namespace, object_name, input);
    let key = reach
        .secret_key_ref
        .as_ref()
        .map(|s| (s.name.clone(), s.key.clone()))
        .unwrap_or_default();
    InputReference {
        input: input.to_string(),
        path: vec![],
        producer: key.0,
        producer_engine: SECRET_REF_ENGINE.to_string(),
        output: key.1,
        output_type: input_type.to_string(),
        sensitive: true,
        reach,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_forms_parse_and_literals_are_refused_without_being_quoted() {
        let k8s = json!({"secret_ref": {"name": "checkout-db", "key": "password"}});
        assert_eq!(
            SecretRef::from_value(&k8s),
            Some(SecretRef::Kubernetes {
                name: "checkout-db".into(),
                key: "password".into(),
                namespace: None
            })
        );
        let ext = json!({"secret_ref": {"store": "vault", "path": "secret/data/db", "key": "pw"}});
        assert!(matches!(
            SecretRef::from_value(&ext),
            Some(SecretRef::External { .. })
        ));
        assert!(check_sensitive(&k8s, "x").is_none());
        let refused = check_sensitive(&json!("hunter2-very-secret"), "config.password").unwrap();
        assert_eq!(refused.field, "config.password");
        assert!(
            refused.message.contains("secret_ref"),
            "{}",
            refused.message
        );
        assert!(!refused.message.contains("hunter2"));
        let malformed = json!({"secret_ref": {"name": "Bad Name", "key": "k"}});
        assert!(check_sensitive(&malformed, "x")
            .unwrap()
            .message
            .contains("malformed"));
        let extra = json!({"secret_ref": {"name": "a", "key": "k", "value": "hunter2"}});
        assert!(check_sensitive(&extra, "x").is_some());
    }

    #[test]
    fn an_external_reference_reads_the_secret_the_operator_writes() {
        let ext = SecretRef::External {
            store: "vault".into(),
            path: "secret/db".into(),
            key: Some("pw".into()),
        };
        let r = secret_input_reference("password", "string", &ext, "alpha--dev", "checkout--db");
        let s = r.reach.secret_key_ref.unwrap();
        assert_eq!(
            (s.name.as_str(), s.namespace.as_str(), s.key.as_str()),
            ("checkout--db-secrets", "alpha--dev", "password")
        );
        assert_eq!(r.producer_engine, SECRET_REF_ENGINE);
    }
}
