//! Search ranking, shared by every store so results agree across backends.

use crate::error::Error;
use crate::model::ResourceDefinition;

/// Most words a search query may have: every word becomes a condition in a
/// store's query, and a thousand of them made SQLite give up ("Expression
/// tree is too large", answered as a store outage; issue 11).
pub const MAX_SEARCH_TERMS: usize = 16;

/// Longest search query, in bytes.
pub const MAX_SEARCH_BYTES: usize = 512;

/// Refuses a search query (the `q` of a search or a listing) with more
/// than [`MAX_SEARCH_TERMS`] words or [`MAX_SEARCH_BYTES`] bytes, as
/// `BAD_REQUEST`: a front-end checks before any store sees it.
pub fn check_search_query(query: &str) -> Result<(), Error> {
    if query.len() > MAX_SEARCH_BYTES {
        return Err(Error::bad_request(format!(
            "the search query is {} bytes long; at most {MAX_SEARCH_BYTES} are allowed",
            query.len()
        )));
    }
    let terms = query.split_whitespace().count();
    if terms > MAX_SEARCH_TERMS {
        return Err(Error::bad_request(format!(
            "the search query has {terms} words; at most {MAX_SEARCH_TERMS} are allowed"
        )));
    }
    Ok(())
}

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
