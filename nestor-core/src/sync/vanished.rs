//! Which versions vanished from a source, from what its files held before
//! (the [`SourceState`]) and what the files read now hold.
//!
//! Only a version absent from a file that parsed cleanly, or from a deleted
//! file, has vanished; a file with a broken document keeps everything it
//! held, so a typo never yanks what consumers use. A version that moved to
//! another file has not vanished.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::SourceState;

/// Updates `state.files` with what the files read hold now and returns the
/// `name:version` subjects that vanished.
pub(super) fn settle(
    state: &mut SourceState,
    deleted: &[String],
    now_in_file: BTreeMap<String, Vec<String>>,
    clean: &BTreeSet<String>,
) -> Vec<String> {
    let mut gone: Vec<String> = Vec::new();
    for file in deleted {
        gone.extend(state.files.remove(file).unwrap_or_default());
    }
    for (file, subjects) in now_in_file {
        let before = state.files.remove(&file).unwrap_or_default();
        if clean.contains(&file) {
            gone.extend(before.into_iter().filter(|s| !subjects.contains(s)));
            if !subjects.is_empty() {
                state.files.insert(file, subjects);
            }
        } else {
            let merged: BTreeSet<String> = before.into_iter().chain(subjects).collect();
            state.files.insert(file, merged.into_iter().collect());
        }
    }
    if gone.is_empty() {
        return gone;
    }
    let still_present: BTreeSet<&String> = state.files.values().flatten().collect();
    gone.retain(|s| !still_present.contains(s));
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(files: &[(&str, &[&str])]) -> SourceState {
        SourceState {
            files: files
                .iter()
                .map(|(f, s)| (f.to_string(), s.iter().map(|x| x.to_string()).collect()))
                .collect(),
            ..SourceState::default()
        }
    }

    fn now(files: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        state(files).files.into_iter().collect()
    }

    #[test]
    fn a_version_gone_from_a_clean_file_vanishes() {
        let mut s = state(&[("a.yaml", &["a:1.0.0", "a:1.1.0"])]);
        let clean = BTreeSet::from(["a.yaml".to_string()]);
        let gone = settle(&mut s, &[], now(&[("a.yaml", &["a:1.1.0"])]), &clean);
        assert_eq!(gone, ["a:1.0.0"]);
        assert_eq!(s.files["a.yaml"], ["a:1.1.0"]);
    }

    #[test]
    fn a_file_with_a_broken_document_keeps_what_it_held() {
        let mut s = state(&[("a.yaml", &["a:1.0.0", "b:1.0.0"])]);
        let gone = settle(
            &mut s,
            &[],
            now(&[("a.yaml", &["b:1.0.0"])]),
            &BTreeSet::new(),
        );
        assert!(gone.is_empty());
        assert_eq!(s.files["a.yaml"], ["a:1.0.0", "b:1.0.0"]);
    }

    #[test]
    fn a_deleted_file_vanishes_unless_its_versions_moved() {
        let mut s = state(&[("a.yaml", &["a:1.0.0", "b:1.0.0"])]);
        let clean = BTreeSet::from(["b.yaml".to_string()]);
        let moved = now(&[("b.yaml", &["b:1.0.0"])]);
        let gone = settle(&mut s, &["a.yaml".to_string()], moved, &clean);
        assert_eq!(gone, ["a:1.0.0"]);
        assert!(!s.files.contains_key("a.yaml"));
    }
}
