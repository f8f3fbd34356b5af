//! What a plugin returns is untrusted: every artifact path must stay inside
//! the resource's folder, every output must be JSON (a typed reach, or a
//! 0.1.0 value read by [`Reach::from_json`]), and the whole must fit the
//! output cap. WASM and native engines share these checks.

use std::collections::{BTreeMap, BTreeSet};

use nestor_core::{Artifact, Reach, RenderOutput};
use serde_json::Value;

/// Checks a plugin's answer; `Err` carries the cause for the message.
pub(crate) fn validate(
    artifacts: Vec<Artifact>,
    outputs: Vec<(String, String)>,
    limit: usize,
) -> Result<RenderOutput, String> {
    let size: usize = artifacts
        .iter()
        .map(|a| a.path.len() + a.content.len() + a.media_type.len())
        .sum::<usize>()
        + outputs
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    if size > limit {
        return Err(format!(
            "returned {} of output, over the cap of {}",
            human(size),
            human(limit)
        ));
    }
    let mut seen = BTreeSet::new();
    for artifact in &artifacts {
        check_path(&artifact.path)?;
        if !seen.insert(artifact.path.as_str()) {
            return Err(format!(
                "returned the artifact path `{}` twice",
                artifact.path
            ));
        }
    }
    let mut parsed = BTreeMap::new();
    for (name, text) in outputs {
        if name.is_empty() {
            return Err("returned an output without a name".into());
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("returned output `{name}` that is not JSON: {e}"))?;
        parsed.insert(name, Reach::from_json(value));
    }
    Ok(RenderOutput {
        artifacts,
        outputs: parsed,
    })
}

/// A relative, `/`-separated path with no `..`, `.` or empty segment.
fn check_path(path: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "returned the artifact path `{}`, {why}",
            path.escape_debug()
        ))
    };
    if path.is_empty() {
        return bad("which is empty");
    }
    if path.len() > 1024 {
        return bad("which is too long");
    }
    if path.starts_with('/')
        || path.contains('\\')
        || path.contains(':')
        || path.chars().any(char::is_control)
    {
        return bad("which is not a relative path");
    }
    if path
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return bad("which leaves the resource's folder or has an empty segment");
    }
    Ok(())
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(path: &str) -> Artifact {
        Artifact {
            path: path.into(),
            content: "x".into(),
            media_type: "text/plain".into(),
        }
    }

    #[test]
    fn refuses_escaping_paths_and_bad_json() {
        for path in ["../x", "/etc/passwd", "a//b", "a/./b", "C:\\x", ""] {
            assert!(
                validate(vec![artifact(path)], vec![], 1 << 20).is_err(),
                "{path}"
            );
        }
        assert!(validate(
            vec![artifact("a/b.yaml")],
            vec![("o".into(), "{".into())],
            1 << 20
        )
        .is_err());
        assert!(validate(vec![artifact("a"), artifact("a")], vec![], 1 << 20).is_err());
        let ok = validate(
            vec![artifact("dir/main.tf.json")],
            vec![("o".into(), "\"v\"".into())],
            1 << 20,
        )
        .unwrap();
        assert_eq!(ok.outputs["o"], Reach::value("v"));
        assert!(validate(vec![artifact("a")], vec![], 2).is_err());
    }
}
