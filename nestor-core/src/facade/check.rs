//! Checking documents without writing them (`POST /api/v1/validate`,
//! `nestor catalog validate`): the definitions through a dry run of the
//! publish path, the compositions through the composer's checks — the same
//! rules a write applies, never a second set.

use serde::{Deserialize, Serialize};

use super::{CheckScope, Nestor};
use crate::error::{Error, FieldError, Result};
use crate::parse::Document;

/// What one document of a checked body is, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DocumentCheck {
    /// Its position in the body, from 0.
    pub index: usize,
    /// `definition`, `composition`, `foreign` (not Nestor's: skipped) or
    /// `invalid` (Nestor's, but it does not parse).
    pub kind: String,
    /// `name:version` (`team/name:version` for a composition),
    /// `apiVersion/kind` for a foreign document, empty for an invalid one.
    pub name: String,
    /// Every problem found; empty when a write would accept it.
    pub errors: Vec<FieldError>,
}

impl DocumentCheck {
    fn new(index: usize, kind: &str, name: String, errors: Vec<FieldError>) -> Self {
        DocumentCheck {
            index,
            kind: kind.into(),
            name,
            errors,
        }
    }
}

impl Nestor {
    /// Checks interpreted documents (their index in the body and what
    /// they are) as a write would, writing nothing: the definitions
    /// together through [`Nestor::check`] with `scope` (so one may depend
    /// on another of the same body), each composition through
    /// [`Nestor::check_composition`] against the catalog. The answer is in
    /// the order given. Only a storage failure fails the whole call.
    pub async fn check_documents(
        &self,
        documents: Vec<(usize, Document)>,
        scope: CheckScope,
    ) -> Result<Vec<DocumentCheck>> {
        let mut out: Vec<Option<DocumentCheck>> = vec![None; documents.len()];
        let mut definitions = Vec::new();
        let mut positions = Vec::new();
        for (slot, (index, doc)) in documents.into_iter().enumerate() {
            out[slot] = Some(match doc {
                Document::Definition(d) => {
                    positions.push((slot, index, d.subject()));
                    definitions.push(*d);
                    continue;
                }
                Document::Composition(c) => {
                    let errors = match self.check_composition(&c).await {
                        Ok(_) => Vec::new(),
                        Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => {
                            return Err(e)
                        }
                        Err(e) => e.field_errors(),
                    };
                    DocumentCheck::new(index, "composition", c.subject(), errors)
                }
                Document::Foreign { api_version, kind } => {
                    DocumentCheck::new(index, "foreign", format!("{api_version}/{kind}"), vec![])
                }
                Document::Invalid(errors) => {
                    DocumentCheck::new(index, "invalid", String::new(), errors)
                }
            });
        }
        let results = self.check(definitions, scope).await?;
        for ((slot, index, subject), result) in positions.into_iter().zip(results) {
            let errors = match result {
                Ok(_) => Vec::new(),
                Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => {
                    return Err(e)
                }
                Err(e) => e.field_errors(),
            };
            out[slot] = Some(DocumentCheck::new(index, "definition", subject, errors));
        }
        Ok(out
            .into_iter()
            .map(|c| c.expect("every document is checked"))
            .collect())
    }
}
