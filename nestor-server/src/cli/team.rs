//! `nestor team list` and `nestor team show TEAM`: what each team owns,
//! its quotas with their usage, and the policies that judge it.

use std::process::ExitCode;

use clap::Subcommand;
use nestor_core::{QuotaUsage, Team};

use super::output::{emit, Table};
use super::Context;

/// `nestor team ...`
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Every team: compositions, live deployments, quotas and policies.
    List,
    /// One team in full.
    Show {
        /// The team.
        team: String,
    },
}

pub(super) async fn run(command: TeamCommand, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let backend = ctx.backend().await?;
    match command {
        TeamCommand::List => {
            let teams = backend.teams().await?;
            emit(ctx.format(), &teams, || {
                let mut t =
                    Table::new(&["TEAM", "COMPOSITIONS", "DEPLOYMENTS", "QUOTAS", "POLICIES"]);
                for team in &teams {
                    let live: usize = team.deployments.values().map(Vec::len).sum();
                    t.row(vec![
                        team.name.clone(),
                        team.compositions.len().to_string(),
                        live.to_string(),
                        team.quotas
                            .iter()
                            .map(quota_line)
                            .collect::<Vec<_>>()
                            .join("; "),
                        team.policies.len().to_string(),
                    ]);
                }
                t.render()
            })?;
        }
        TeamCommand::Show { team } => {
            let team = backend.team(&team).await?;
            emit(ctx.format(), &team, || show(&team))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(team: &Team) -> String {
    let mut out = format!("team {}\n", team.name);
    out.push_str(&format!("compositions: {}\n", list(&team.compositions)));
    out.push_str("deployments:\n");
    if team.deployments.is_empty() {
        out.push_str("  none\n");
    }
    for (env, names) in &team.deployments {
        out.push_str(&format!("  {env}: {}\n", names.join(", ")));
    }
    out.push_str("quotas:\n");
    if team.quotas.is_empty() {
        out.push_str("  none\n");
    }
    for q in &team.quotas {
        out.push_str(&format!("  {}\n", quota_line(q)));
    }
    out.push_str("policies:\n");
    if team.policies.is_empty() {
        out.push_str("  none\n");
    }
    for p in &team.policies {
        let from = p
            .source
            .as_deref()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        out.push_str(&format!("  {} ({}, {}){from}\n", p.file, p.hook, p.scope));
    }
    out
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// `production: deployments 2/5, resources 4/10, database 1/3`.
fn quota_line(q: &QuotaUsage) -> String {
    let scope = q.quota.environment.as_deref().unwrap_or("all environments");
    let parts: Vec<String> = q
        .quota
        .limits()
        .into_iter()
        .map(|(limit, max)| {
            let name = limit.name();
            let short = name
                .strip_prefix("max_per_category.")
                .or_else(|| name.strip_prefix("max_"))
                .unwrap_or(&name)
                .to_string();
            format!("{short} {}/{max}", limit.of(&q.usage))
        })
        .collect();
    format!("{scope}: {}", parts.join(", "))
}
