//! `nestor events`: tails the event stream — over SSE against a server, or
//! by reading the local store's event log — with the server's filters.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use super::{Context, Format};
use nestor_core::EventSelector as Selector;

/// The `events` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// KEY:VALUE (provider, category, resource_type, name, team,
    /// environment, source, subject); repeatable.
    #[arg(long = "filter", value_name = "KEY:VALUE")]
    filters: Vec<String>,
    /// Comma-separated event types or prefixes such as `resource.*`.
    #[arg(long)]
    types: Option<String>,
    /// Replay from after this event sequence (default: only new events).
    #[arg(long)]
    since: Option<u64>,
    /// Exit after this many events.
    #[arg(long)]
    count: Option<usize>,
}

pub(super) async fn events(args: EventsArgs, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let filters: Vec<&str> = args.filters.iter().map(String::as_str).collect();
    let types: Vec<&str> = args.types.iter().map(String::as_str).collect();
    let selector =
        Selector::from_parts(&filters, &types).map_err(nestor_core::Error::bad_request)?;
    let backend = ctx.backend().await?;
    let mut last = match args.since {
        Some(n) => n,
        None => backend.last_event().await?,
    };
    let mut printed = 0usize;
    if args.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        for e in backend.events_after(last, Duration::from_secs(30)).await? {
            last = e.id;
            if !selector.matches(&e) {
                continue;
            }
            let line = match ctx.format() {
                Format::Table => format!(
                    "{}  {}  {}  {}\n",
                    e.id,
                    e.event_type.as_str(),
                    e.subject,
                    e.source
                ),
                Format::Json => format!("{}\n", serde_json::to_string(&e)?),
                Format::Yaml => format!("---\n{}", serde_yaml::to_string(&e)?),
            };
            let mut out = std::io::stdout().lock();
            out.write_all(line.as_bytes())?;
            out.flush()?;
            printed += 1;
            if args.count.is_some_and(|c| printed >= c) {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}
