//! Reading a source's files: each file parsed into the definitions and
//! compositions it holds, and the errors of the documents that were not
//! usable. Parsing is pure CPU work and the bulk of a cold sync, so it runs
//! on the catalog's [`Offload`], spread over every core; the files are read
//! in pieces, the next piece while the last one parses, so that neither
//! the source's reads nor the parse wait for the other to finish whole.

use std::collections::BTreeSet;

use futures_util::StreamExt;

use crate::cpu::{self, Offload};
use crate::error::{Error, ErrorCode, FieldError, Result};
use crate::model::*;
use crate::parse::{parse_file, Document};
use crate::source::{CatalogSource, SourceHead};

/// A definition read from a file, waiting to be published.
pub(super) struct Pending {
    pub file: String,
    pub document: usize,
    pub line: usize,
    pub definition: ResourceDefinition,
}

/// A composition read from a file.
pub(super) struct PendingComposition {
    pub file: String,
    pub document: usize,
    pub line: usize,
    pub composition: Composition,
}

/// What the files read held, in file order.
#[derive(Default)]
pub(super) struct Parsed {
    pub definitions: Vec<Pending>,
    pub compositions: Vec<PendingComposition>,
    /// The files whose every document was usable.
    pub clean: BTreeSet<String>,
    pub errors: Vec<DocumentError>,
}

/// How many files one read of the source hands to the parser: enough for
/// the source to spread a read over its threads, few enough that the first
/// parse starts early and the last read does not run alone.
const READ_PIECE: usize = 512;

/// Reads `paths` at `head` from `source` and parses every file on
/// `offload`, a piece of files read while the piece before parses; what
/// they held in file order.
pub(super) async fn read_and_parse(
    source: &dyn CatalogSource,
    head: &SourceHead,
    offload: &dyn Offload,
    paths: &[String],
) -> Parsed {
    let pieces: Vec<Parsed> = futures_util::stream::iter(paths.chunks(READ_PIECE))
        .map(|piece| async move {
            let contents = source.read_files(head, piece).await;
            parse_all(offload, piece, contents).await
        })
        .buffered(2)
        .collect()
        .await;
    let mut parsed = Parsed::default();
    for piece in pieces {
        parsed.definitions.extend(piece.definitions);
        parsed.compositions.extend(piece.compositions);
        parsed.clean.extend(piece.clean);
        parsed.errors.extend(piece.errors);
    }
    parsed
}

/// Parses every file on `offload`.
async fn parse_all(
    offload: &dyn Offload,
    paths: &[String],
    contents: Vec<Result<Vec<u8>>>,
) -> Parsed {
    let jobs: Vec<(String, Result<Vec<u8>>)> = paths.iter().cloned().zip(contents).collect();
    let files = cpu::map(offload, jobs, 64, |(path, bytes)| parse_one(&path, bytes)).await;
    let mut parsed = Parsed::default();
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
fn parse_one(path: &str, bytes: Result<Vec<u8>>) -> FileParse {
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
    for doc in docs {
        match doc.document {
            Document::Definition(def) => out.definitions.push(Pending {
                file: path.into(),
                document: doc.index,
                line: doc.line,
                definition: *def,
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
