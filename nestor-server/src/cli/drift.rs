//! `nestor drift [ID]` and `nestor status ID --logs`: what Nestor's own
//! Terraform runs found and printed (issue 14), embedded or over
//! `--server` (which checks one deployment at a time).

use std::process::ExitCode;

use super::output::emit;
use super::Context;

/// Checks one deployment (or every succeeded one) for drift now and
/// prints the drifted addresses; exits 1 when anything drifted.
pub(super) async fn drift(id: Option<&str>, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let reports = ctx.backend().await?.drift(id).await?;
    let drifted = reports.iter().any(|r| !r.resources.is_empty());
    emit(ctx.format(), &reports, || {
        let mut text = String::new();
        for r in &reports {
            if r.resources.is_empty() {
                text.push_str(&format!("{}: no drift\n", r.deployment));
                continue;
            }
            text.push_str(&format!("{}: drifted\n", r.deployment));
            for res in &r.resources {
                for address in &res.addresses {
                    text.push_str(&format!("  {}: {address}\n", res.resource));
                }
            }
        }
        if reports.is_empty() {
            text.push_str("no deployment has Terraform resources Nestor runs\n");
        }
        text
    })?;
    Ok(if drifted {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints the logs of a deployment's Terraform runs.
pub(super) async fn logs(id: &str, ctx: &Context<'_>) -> anyhow::Result<ExitCode> {
    let logs = ctx.backend().await?.logs(id).await?;
    emit(ctx.format(), &logs, || {
        if logs.is_empty() {
            return format!(
                "{id}: no run logs (no resource ran through Nestor's Terraform executor)\n"
            );
        }
        logs.iter()
            .map(|l| format!("==> {} <==\n{}", l.resource, l.text))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(ExitCode::SUCCESS)
}
