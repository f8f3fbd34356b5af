//! A source's policy files (`policies/**/*.rego` below the folder it
//! reads): kept whole in its [`SourceState`], updated from the files a
//! sync read or saw deleted, and compiled into the source's layer of the
//! shared [`Policies`] — before its definitions publish, so a policy and
//! the definitions it judges can arrive in the same commit.
//!
//! The folder a file sits in gives its scope:
//! - `policies/…` — global;
//! - `policies/teams/TEAM/…` — team `TEAM`'s compositions and deployments;
//! - `policies/environments/ENV/…` — deployments in `ENV`;
//! - `policies/teams/TEAM/environments/ENV/…` — both.
//!
//! A file that does not compile is left out and reported per file, like a
//! broken definition; the other files stay in force.

use crate::error::{ErrorCode, FieldError, Result};
use crate::model::{DocumentError, SourceState, StoredPolicy};
use crate::policy::{PolicyFile, PolicyOrigin, PolicyProblem, PolicyScope};

/// The layer of the shared policies a source's files fill.
pub(crate) fn layer_of(source: &str) -> String {
    format!("source:{source}")
}

/// The scope the folders of `path` give (see the module docs); `base` is
/// the folder the source reads.
pub(crate) fn scope_of(path: &str, base: &str) -> PolicyScope {
    let base = base.trim_matches('/');
    let rest = if base.is_empty() {
        path
    } else {
        path.strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(path)
    };
    let parts: Vec<&str> = rest.split('/').collect();
    // policies / [teams / T /] [environments / E /] file
    let folders = &parts[1..parts.len().saturating_sub(1).max(1)];
    let mut scope = PolicyScope::global();
    let mut at = 0;
    if folders.len() >= at + 2 && folders[at] == "teams" {
        scope.team = Some(folders[at + 1].to_string());
        at += 2;
    }
    if folders.len() >= at + 2 && folders[at] == "environments" {
        scope.environment = Some(folders[at + 1].to_string());
    }
    scope
}

/// Brings `state.policies` up to date: `deleted` files removed, the files
/// read (`reads`, with their bytes) replaced; a file that cannot be read
/// or is not UTF-8 is an error and keeps its previous text.
pub(super) fn update(
    state: &mut SourceState,
    base: &str,
    deleted: &[String],
    reads: Vec<(String, Result<Vec<u8>>)>,
    commit: Option<&String>,
) -> Vec<DocumentError> {
    for path in deleted {
        state.policies.remove(path);
    }
    let mut errors = Vec::new();
    for (path, bytes) in reads {
        let text = bytes.map_err(|e| e.to_string()).and_then(|b| {
            String::from_utf8(b).map_err(|_| "the file is not UTF-8 text".to_string())
        });
        match text {
            Ok(text) => {
                let scope = scope_of(&path, base);
                state.policies.insert(
                    path,
                    StoredPolicy {
                        scope,
                        text,
                        commit: commit.cloned(),
                    },
                );
            }
            Err(message) => errors.push(problem_error(&path, &message)),
        }
    }
    errors
}

/// The policy files of `state`, kept for `source`, as its layer holds them.
pub(super) fn files_of(source: &str, state: &SourceState) -> Vec<PolicyFile> {
    state
        .policies
        .iter()
        .map(|(path, stored)| PolicyFile {
            origin: PolicyOrigin {
                file: path.clone(),
                source: Some(source.to_string()),
                commit: stored.commit.clone(),
            },
            scope: stored.scope.clone(),
            text: stored.text.clone(),
        })
        .collect()
}

/// A file that did not compile as a sync report's error.
pub(super) fn compile_error(problem: &PolicyProblem) -> DocumentError {
    problem_error(&problem.origin.file, &problem.message)
}

fn problem_error(file: &str, message: &str) -> DocumentError {
    let mut error = FieldError::new("", message);
    error.line = line_in(message);
    DocumentError {
        file: file.to_string(),
        document: 0,
        line: error.line.unwrap_or(1),
        code: ErrorCode::ValidationFailed.as_str().into(),
        errors: vec![error],
        team: None,
    }
}

/// The line of a parser message (`file:LINE:COL: ...`), when it names one.
fn line_in(message: &str) -> Option<usize> {
    message
        .split(':')
        .map(str::trim)
        .find_map(|part| part.parse::<usize>().ok())
        .filter(|l| *l > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_give_the_scope() {
        let scope = |p: &str| {
            let s = scope_of(p, "");
            (s.team, s.environment)
        };
        assert_eq!(scope("policies/labels.rego"), (None, None));
        assert_eq!(scope("policies/lib/util.rego"), (None, None));
        assert_eq!(
            scope("policies/teams/alpha/x.rego"),
            (Some("alpha".into()), None)
        );
        assert_eq!(
            scope("policies/environments/production/x.rego"),
            (None, Some("production".into()))
        );
        assert_eq!(
            scope("policies/teams/alpha/environments/dev/sub/x.rego"),
            (Some("alpha".into()), Some("dev".into()))
        );
        let s = scope_of("catalog/policies/teams/beta/x.rego", "catalog/");
        assert_eq!(s.team.as_deref(), Some("beta"));
    }
}
