//! Talking to DynamoDB: building the SDK client, bounded retries, and
//! mapping SDK failures to the core's error type.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::CancellationReason;
use nestor_core::Error;

use super::DynamoConfig;

/// Attempts per request inside the SDK (standard retry mode: throttling,
/// 5xx and I/O errors are retried with exponential backoff and jitter).
const SDK_MAX_ATTEMPTS: u32 = 4;
/// First backoff of the SDK's retries; doubles up to [`SDK_MAX_BACKOFF`].
const SDK_INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// Longest single backoff of the SDK's retries.
const SDK_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A TCP connection that cannot be made in this time counts as a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of one request.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// One request, retries included: the bound on how long a call can hang
/// before it reports `STORAGE_UNAVAILABLE`.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Rounds of an optimistic read-check-write loop (a transaction that lost
/// a race to another writer) before giving up with `STORAGE_UNAVAILABLE`.
pub(crate) const MAX_WRITE_ROUNDS: u32 = 40;

/// Builds the SDK client for `config`.
///
/// Credentials come from the standard AWS chain (environment, profile,
/// `credential_process`, web identity, ECS, IMDS). The one exception is an
/// `endpoint_url` on a loopback address (DynamoDB Local, moto): there the
/// chain stops at the environment and otherwise falls back to fixed dummy
/// keys, so a local setup needs no credentials and never probes the
/// instance-metadata endpoint.
pub(crate) async fn build_client(config: &DynamoConfig) -> aws_sdk_dynamodb::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(SDK_MAX_ATTEMPTS)
                .with_initial_backoff(SDK_INITIAL_BACKOFF)
                .with_max_backoff(SDK_MAX_BACKOFF),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
        if is_loopback(url) {
            loader = loader.credentials_provider(local_credentials());
        }
    }
    let sdk = loader.load().await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

fn local_credentials() -> Credentials {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => {
            Credentials::new(key, secret, env("AWS_SESSION_TOKEN"), None, "environment")
        }
        _ => Credentials::new(
            "nestorlocal",
            "nestorlocal",
            None,
            None,
            "nestor-local-endpoint",
        ),
    }
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Maps a failed request to `STORAGE_UNAVAILABLE`, keeping the SDK error as
/// the source so the log shows the whole chain. The SDK has already retried
/// what was retryable by then.
pub(crate) fn unavailable<E, R>(operation: &str, err: SdkError<E, R>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // A service error's code and message say it all; the raw response
    // stays in the source chain.
    let message = match (err.code(), err.message()) {
        (Some(code), message) => format!(
            "DynamoDB {operation} failed: {code}: {}",
            message.unwrap_or("")
        ),
        _ => format!("DynamoDB {operation} failed: {}", DisplayErrorContext(&err)),
    };
    tracing::warn!(target: "nestor_storage::dynamodb", "{message}");
    Error::storage(message, err)
}

/// Too many lost races in a row: report it like an outage (it is one, from
/// the caller's point of view, and the caller may retry).
pub(crate) fn contention(what: &str) -> Error {
    Error::StorageUnavailable {
        message: format!("DynamoDB {what}: still contended after {MAX_WRITE_ROUNDS} rounds"),
        source: None,
    }
}

/// A fresh `ClientRequestToken` for one transaction. The SDK resends the
/// same token when it retries, and DynamoDB answers a resent transaction
/// that already committed with success instead of failing its conditions,
/// so a lost response never turns a win into a conflict.
pub(crate) fn request_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = NEXT.fetch_add(1, Ordering::Relaxed);
    // At most 36 characters: 16 + 1 + 8 + 1 + 8.
    format!(
        "{:016x}-{:08x}-{:08x}",
        nanos as u64,
        std::process::id(),
        count as u32
    )
}

/// Why each item of a cancelled transaction failed, by position.
pub(crate) fn cancel_codes(reasons: &[CancellationReason]) -> Vec<&str> {
    reasons.iter().map(|r| r.code().unwrap_or("None")).collect()
}

/// Sleeps before the next round of an optimistic loop: exponential from
/// 5 ms, capped at 200 ms, with jitter so racing writers spread out.
pub(crate) async fn backoff(round: u32) {
    let base = 5u64 << round.min(6);
    let cap = base.min(200);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = u64::from(nanos) % (cap + 1);
    tokio::time::sleep(Duration::from_millis(cap / 2 + jitter / 2)).await;
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_endpoints() {
        assert!(is_loopback("http://127.0.0.1:8000"));
        assert!(is_loopback("http://localhost:8000/"));
        assert!(is_loopback("http://[::1]:8000"));
        assert!(is_loopback("127.0.0.2"));
        assert!(!is_loopback("https://dynamodb.us-east-1.amazonaws.com"));
        assert!(!is_loopback("http://10.0.0.1:8000"));
    }
}
