//! What the templates of one request may cost, together.
//!
//! minijinja's fuel is charged per evaluation: for every instruction, and
//! for every byte of data a template produces or copies, checked before a
//! large allocation is made. Fuel per template alone let one 6 KB plan ask
//! for 200 templates of `{{ 'x' * 5000000 }}` — each within its own fuel —
//! and hold 2 GB (issue 11). A [`TemplateBudget`] is made once per request
//! and shared by every template the request renders: each evaluation gets
//! only the fuel the request has left, the sizes of what the templates
//! render add up against one limit, and no single string may exceed
//! another. The first template past any limit fails, marks the request
//! over budget, and every later one fails at once; a plan over budget is
//! refused as a whole with `VALIDATION_FAILED`, in milliseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

/// The limits of one request's templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Fuel for every template of the request together. One fuel is one
    /// instruction, or 64 bytes of data produced or copied.
    pub fuel: u64,
    /// Fuel one template may use (a runaway loop stops here even when the
    /// request has more).
    pub fuel_per_template: u64,
    /// Bytes every template of the request may render, together.
    pub rendered_bytes: u64,
    /// The longest string a template may produce.
    pub max_string_bytes: u64,
}

impl Default for TemplateLimits {
    /// 500,000 fuel (about 32 MiB of data moved) per request, 100,000 per
    /// template, 4 MiB rendered per request, 256 KiB per string: a hundred
    /// times what real compositions use.
    fn default() -> Self {
        TemplateLimits {
            fuel: 500_000,
            fuel_per_template: 100_000,
            rendered_bytes: 4 * 1024 * 1024,
            max_string_bytes: 256 * 1024,
        }
    }
}

/// One request's template budget; clones share it.
#[derive(Debug, Clone)]
pub struct TemplateBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: TemplateLimits,
    /// Fuel the request's templates have used.
    fuel_used: AtomicU64,
    /// Bytes its templates have rendered.
    bytes_used: AtomicU64,
    /// Set once a limit was passed: every later template fails.
    exhausted: AtomicBool,
    /// The first limit passed, for the request's answer.
    reason: std::sync::Mutex<Option<String>>,
}

impl Default for TemplateBudget {
    fn default() -> Self {
        TemplateBudget::new(TemplateLimits::default())
    }
}

impl TemplateBudget {
    /// A fresh budget with `limits`.
    pub fn new(limits: TemplateLimits) -> Self {
        TemplateBudget {
            inner: Arc::new(Inner {
                limits,
                fuel_used: AtomicU64::new(0),
                bytes_used: AtomicU64::new(0),
                exhausted: AtomicBool::new(false),
                reason: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The limits.
    pub fn limits(&self) -> TemplateLimits {
        self.inner.limits
    }

    /// Fuel used so far.
    pub fn fuel_used(&self) -> u64 {
        self.inner.fuel_used.load(Ordering::Relaxed)
    }

    /// Bytes rendered so far.
    pub fn bytes_used(&self) -> u64 {
        self.inner.bytes_used.load(Ordering::Relaxed)
    }

    /// Whether a request-wide limit was passed.
    pub fn is_exhausted(&self) -> bool {
        self.inner.exhausted.load(Ordering::Relaxed)
    }

    /// The message every template of an exhausted request fails with:
    /// the first limit it passed.
    pub fn exhausted_message(&self) -> String {
        let l = self.inner.limits;
        let reason = self
            .inner
            .reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| {
                format!(
                    "{} fuel and {} bytes rendered per request; used {} fuel, {} bytes",
                    l.fuel,
                    l.rendered_bytes,
                    self.fuel_used(),
                    self.bytes_used()
                )
            });
        format!("the templates of this request exceed their budget: {reason}")
    }

    /// Marks the request over budget (the first reason is kept) and
    /// returns the message.
    pub(super) fn exhaust_with(&self, reason: Option<String>) -> String {
        if let (Some(reason), Ok(mut first)) = (reason, self.inner.reason.lock()) {
            first.get_or_insert(reason);
        }
        self.inner.exhausted.store(true, Ordering::Relaxed);
        self.exhausted_message()
    }

    fn exhaust(&self) -> String {
        self.exhaust_with(None)
    }

    /// The fuel the next evaluation may use, or the reason there is none.
    pub(super) fn next_fuel(&self) -> Result<Allowance, String> {
        if self.is_exhausted() {
            return Err(self.exhausted_message());
        }
        let l = self.inner.limits;
        let left = l.fuel.saturating_sub(self.fuel_used());
        if left == 0 {
            return Err(self.exhaust());
        }
        Ok(Allowance {
            fuel: left.min(l.fuel_per_template),
            request_bound: left < l.fuel_per_template,
            output_bytes: l
                .max_string_bytes
                .min(l.rendered_bytes.saturating_sub(self.bytes_used())),
        })
    }

    /// Charges an evaluation's fuel.
    pub(super) fn charge_fuel(&self, fuel: u64) {
        self.inner.fuel_used.fetch_add(fuel, Ordering::Relaxed);
    }

    /// Charges what an evaluation produced: refuses a string longer than
    /// the limit, and the request once its rendered bytes pass theirs.
    pub(super) fn charge_value(&self, value: &Value) -> Result<(), String> {
        let l = self.inner.limits;
        if let Some(long) = longest_string(value).filter(|n| *n as u64 > l.max_string_bytes) {
            // A request that asks for this is refused as a whole.
            return Err(self.exhaust_with(Some(format!(
                "a template produced a string of {long} bytes; the limit is {}",
                l.max_string_bytes
            ))));
        }
        let size = value_size(value);
        let used = self.inner.bytes_used.fetch_add(size, Ordering::Relaxed) + size;
        if used > l.rendered_bytes {
            return Err(self.exhaust());
        }
        Ok(())
    }

    /// Marks the request's fuel as spent (an evaluation ran out of it
    /// while bounded by the request rather than by its own limit).
    pub(super) fn exhaust_fuel(&self) -> String {
        self.inner
            .fuel_used
            .store(self.inner.limits.fuel, Ordering::Relaxed);
        self.exhaust()
    }
}

/// What one evaluation may use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Allowance {
    /// Fuel for it.
    pub fuel: u64,
    /// Whether that fuel is what the request has left (so running out of
    /// it exhausts the request).
    pub request_bound: bool,
    /// The most text it may render.
    pub output_bytes: u64,
}

/// The length of the longest string in a value tree.
fn longest_string(value: &Value) -> Option<usize> {
    match value {
        Value::String(s) => Some(s.len()),
        Value::Array(items) => items.iter().filter_map(longest_string).max(),
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| longest_string(v).max(Some(k.len())))
            .max(),
        _ => None,
    }
}

/// About the bytes a value takes when serialised.
fn value_size(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.len() as u64 + 2,
        Value::Array(items) => 2 + items.iter().map(|v| value_size(v) + 1).sum::<u64>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() as u64 + 4 + value_size(v))
                .sum::<u64>()
        }
        _ => 8,
    }
}
