//! Checking documents without writing them (`POST /api/v1/validate`,
//! `nestor catalog validate`): the definitions through a dry run of the
//! publish path, the compositions through the composer's checks — the same
//! rules a write applies, never a second set.

use serde::{Deserialize, Serialize};

use super::{CheckScope, Nestor};
use crate::error::{Error, ErrorCode, FieldError, Result};
use crate::parse::Document;

/// What one document of a checked body is, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The code of the error a write would answer (`VALIDATION_FAILED`
    /// for a document that does not parse); absent when it would accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// A valid composition's waves: the resource names each wave of a
    /// deployment of it applies together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Vec<String>>,
}

impl DocumentCheck {
    fn new(index: usize, kind: &str, name: String, errors: Vec<FieldError>) -> Self {
        let code = (!errors.is_empty()).then_some(ErrorCode::ValidationFailed);
        DocumentCheck {
            index,
            kind: kind.into(),
            name,
            errors,
            code,
            waves: Vec::new(),
        }
    }

    /// The verdict of a write: accepted (with `waves`, for a composition),
    /// or refused with the error's code and field errors.
    fn judged(index: usize, kind: &str, name: String, verdict: Result<Vec<Vec<String>>>) -> Self {
        let mut check = DocumentCheck::new(index, kind, name, Vec::new());
        match verdict {
            Ok(waves) => check.waves = waves,
            Err(e) => {
                check.code = Some(e.code());
                check.errors = e.field_errors();
            }
        }
        check
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
                    let verdict = match self.check_composition(&c).await {
                        Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => {
                            return Err(e)
                        }
                        verdict => verdict,
                    };
                    DocumentCheck::judged(index, "composition", c.subject(), verdict)
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
            let verdict = match result {
                Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => {
                    return Err(e)
                }
                verdict => verdict.map(|_| Vec::new()),
            };
            out[slot] = Some(DocumentCheck::judged(index, "definition", subject, verdict));
        }
        Ok(out
            .into_iter()
            .map(|c| c.expect("every document is checked"))
            .collect())
    }
}
