//! Search ranking, shared by every store so results agree across backends.

use crate::model::ResourceDefinition;

/// Scores a definition against a free-text query: every term must match
/// somewhere (0 otherwise); an exact name beats a name prefix, which beats a
/// name substring, then type/category/provider, labels, and description.
pub fn search_score(def: &ResourceDefinition, query: &str) -> u32 {
    let m = &def.metadata;
    let name = m.name.to_lowercase();
    let description = m.description.to_lowercase();
    let mut total = 0;
    let mut any_term = false;
    for term in query.split_whitespace().map(str::to_lowercase) {
        any_term = true;
        let mut score = 0;
        if name == term {
            score += 100;
        } else if name.starts_with(&term) {
            score += 60;
        } else if name.contains(&term) {
            score += 40;
        }
        for field in [&m.resource_type, &m.category, &m.provider] {
            if field.to_lowercase() == term {
                score += 30;
            } else if field.to_lowercase().contains(&term) {
                score += 10;
            }
        }
        for (k, v) in &m.labels {
            if k.to_lowercase() == term || v.to_lowercase() == term {
                score += 20;
            }
        }
        if description.contains(&term) {
            score += 10;
        }
        if score == 0 {
            return 0;
        }
        total += score;
    }
    if any_term {
        total
    } else {
        0
    }
}

/// Orders hits best first; equal scores by name, so every store returns the
/// same order.
pub fn rank_hits(hits: &mut [crate::store::SearchHit]) {
    hits.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.version.name().cmp(b.version.name()))
    });
}
