//! Reading a source's files: each file parsed into the definitions and
//! compositions it holds, and the errors of the documents that were not
//! usable. Parsing is pure CPU work and the bulk of a cold sync, so it runs
//! on the catalog's [`Offload`], spread over every core.

use std::collections::BTreeSet;

use crate::catalog::Candidate;
use crate::cpu::{self, Offload};
use crate::error::{Error, ErrorCode, FieldError, Result};
use crate::model::*;
use crate::parse::{parse_file, Document};

/// A definition read from a file, waiting to be published: already a
/// [`Candidate`] (serialised and hashed on the lane that parsed it, while
/// it is in that core's cache).
pub(super) struct Pending {
    pub file: String,
    pub document: usize,
    pub line: usize,
    pub candidate: Candidate,
}

/// What the documents of one sync are published with: where they came
/// from (everything but their file) and, for definitions, when.
#[derive(Clone)]
pub(super) struct Stamp {
    pub source: String,
    pub repository: String,
    pub commit: Option<String>,
    pub published_at: Timestamp,
}

impl Stamp {
    /// The origin of a document read from `file`.
    pub fn origin(&self, file: &str) -> Origin {
        Origin {
            source: self.source.clone(),
            git_repository: self.repository.clone(),
            git_commit: self.commit.clone(),
            git_path: file.to_string(),
        }
    }
}

/// A composition read from a file.
pub(super) struct PendingComposition {
    pub file: String,
    pub document: usize,
    pub line: usize,
    pub composition: Composition,
}

/// What the files read held, in file order.
pub(super) struct Parsed {
    pub definitions: Vec<Pending>,
    pub compositions: Vec<PendingComposition>,
    /// The files whose every document was usable.
    pub clean: BTreeSet<String>,
    pub errors: Vec<DocumentError>,
}

/// Parses every file on `offload`, each definition made a candidate with
/// `stamp`.
pub(super) async fn parse_all(
    offload: &dyn Offload,
    paths: &[String],
    contents: Vec<Result<Vec<u8>>>,
    stamp: Stamp,
) -> Parsed {
    let jobs: Vec<(String, Result<Vec<u8>>)> = paths.iter().cloned().zip(contents).collect();
    let files = cpu::map(offload, jobs, 64, move |(path, bytes)| {
        parse_one(&path, bytes, &stamp)
    })
    .await;
    let mut parsed = Parsed {
        // Sized once: the definitions are large, and a sync holds thousands.
        definitions: Vec::with_capacity(files.iter().map(|f| f.definitions.len()).sum()),
        compositions: Vec::new(),
        clean: BTreeSet::new(),
        errors: Vec::new(),
    };
    for (path, file) in paths.iter().zip(files) {
        parsed.definitions.extend(file.definitions);
        parsed.compositions.extend(file.compositions);
        if file.errors.is_empty() {
            parsed.clean.insert(path.clone());
        }
        parsed.errors.extend(file.errors);
    }
    parsed
}

/// A document's error as the sync report carries it.
pub(super) fn document_error(file: &str, document: usize, line: usize, e: &Error) -> DocumentError {
    let mut errors = e.field_errors();
    for err in &mut errors {
        err.line.get_or_insert(line);
    }
    if errors.is_empty() {
        errors.push(FieldError::new("", e.to_string()));
    }
    DocumentError {
        file: file.into(),
        document,
        line,
        code: e.code().as_str().into(),
        errors,
        team: None,
    }
}

/// What one file held.
#[derive(Default)]
struct FileParse {
    definitions: Vec<Pending>,
    compositions: Vec<PendingComposition>,
    errors: Vec<DocumentError>,
}

/// Parses one file: its definitions and compositions, and the errors of
/// the documents that were not usable.
fn parse_one(path: &str, bytes: Result<Vec<u8>>, stamp: &Stamp) -> FileParse {
    let mut out = FileParse::default();
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            out.errors.push(document_error(path, 0, 1, &e));
            return out;
        }
    };
    let docs = match parse_file(&bytes) {
        Ok(docs) => docs,
        Err(e) => {
            let error = DocumentError {
                file: path.into(),
                document: 0,
                line: 1,
                code: ErrorCode::BadRequest.as_str().into(),
                errors: vec![e],
                team: None,
            };
            out.errors.push(error);
            return out;
        }
    };
    out.definitions.reserve_exact(docs.len());
    for doc in docs {
        match doc.document {
            Document::Definition(def) => out.definitions.push(Pending {
                file: path.into(),
                document: doc.index,
                line: doc.line,
                candidate: Candidate::new(*def, stamp.published_at, Some(stamp.origin(path))),
            }),
            Document::Composition(c) => out.compositions.push(PendingComposition {
                file: path.into(),
                document: doc.index,
                line: doc.line,
                composition: *c,
            }),
            Document::Invalid(errs) => out.errors.push(DocumentError {
                file: path.into(),
                document: doc.index,
                line: doc.line,
                code: ErrorCode::ValidationFailed.as_str().into(),
                errors: errs,
                // A composition's errors stay with its team.
                team: doc.team,
            }),
            Document::Foreign { api_version, kind } => {
                tracing::warn!(file = path, document = doc.index, %api_version, %kind, "skipping a document that is not Nestor's");
            }
        }
    }
    out
}
