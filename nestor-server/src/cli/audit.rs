//! `nestor audit`: who wrote what, from the audit trail — the local store's
//! embedded, the server's with `--server` (its admin role), one page at a
//! time, newest first.

use std::process::ExitCode;

use nestor_core::{AuditPosition, AuditQuery, AuditRecord};

use super::output::{emit, timestamp, truncate, Table};
use super::Context;

/// The `audit` flags: the trail's filters.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Only this actor (a token's name, an OIDC subject, `local`, `server`).
    #[arg(long)]
    actor: Option<String>,
    /// Only writes to this subject (`cache:1.2.0`, a deployment id, ...).
    #[arg(long)]
    subject: Option<String>,
    /// Only this action (`deployment.apply`) or area (`deployment.*`).
    #[arg(long)]
    action: Option<String>,
    /// Not before: seconds since the epoch or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Before: seconds since the epoch or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many records (1 to 1000; default 100).
    #[arg(long)]
    limit: Option<usize>,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    cursor: Option<String>,
}

impl AuditArgs {
    /// The query these flags ask for (times and the cursor read as the
    /// API reads them).
    fn query(&self) -> nestor_core::Result<AuditQuery> {
        let time = |key: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| AuditQuery::parse_time(key, t))
                .transpose()
        };
        Ok(AuditQuery {
            actor: self.actor.clone(),
            subject: self.subject.clone(),
            action: self.action.clone(),
            since: time("--since", &self.since)?,
            until: time("--until", &self.until)?,
            limit: self.limit,
            after: self
                .cursor
                .as_deref()
                .map(AuditPosition::parse)
                .transpose()?,
        })
    }
}

/// Prints one page of the trail; the next page's cursor goes to stderr.
pub(super) async fn audit(args: AuditArgs, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let query = args.query()?;
    let page = ctx.backend().await?.audit(&query).await?;
    emit(ctx.format(), &page, || table(&page.items))?;
    if let Some(cursor) = &page.next_cursor {
        ctx.note(format!("more records: add --cursor {cursor}"));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(records: &[AuditRecord]) -> String {
    if records.is_empty() {
        return "no audit records match\n".into();
    }
    let mut t = Table::new(&["TIME", "ACTOR", "ACTION", "SUBJECT", "OUTCOME", "REQUEST"]);
    for r in records {
        let e = &r.entry;
        let outcome = match &e.error {
            Some(code) => format!("{} ({code})", e.outcome.as_str()),
            None => e.outcome.as_str().to_string(),
        };
        t.row(vec![
            timestamp(e.timestamp),
            e.actor.name.clone(),
            e.action.clone(),
            truncate(&e.subject, 60),
            outcome,
            e.actor.request_id.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}
