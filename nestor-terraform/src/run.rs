//! Running `terraform` as a child process: one command in one working
//! directory, bounded by a timeout (the child is killed when it passes),
//! its output captured and appended to the run's log.
//!
//! Commands that print machine-readable output are run with `-json`; the
//! log keeps each message's human text (`@message`, and a diagnostic's
//! detail), never the raw values of `terraform output -json`, which would
//! carry sensitive outputs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nestor_core::{Error, Result};
use serde_json::Value;
use std::io::Read as _;
use std::process::{Child, Command, Output};

/// How to run the binary.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    /// The `terraform` executable.
    pub binary: PathBuf,
    /// The longest one command may run.
    pub timeout: Duration,
    /// Extra environment for every command.
    pub env: Vec<(String, String)>,
}

/// What one command did.
pub(crate) struct Finished {
    /// Its exit code (`-1` when a signal ended it).
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// The JSON messages of a `-json` stream (one object a line).
    pub fn messages(&self) -> impl Iterator<Item = Value> + '_ {
        self.stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
    }

    /// Terraform's error diagnostics, one line each
    /// (`summary: detail` plus the address or file when given); the
    /// standard error's text when it printed none as JSON.
    pub fn diagnostics(&self) -> String {
        let mut found: Vec<String> = Vec::new();
        let mut add = |d: &Value| {
            if d.get("severity").and_then(Value::as_str) != Some("error") {
                return;
            }
            let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").trim();
            let mut line = text("summary").to_string();
            if !text("detail").is_empty() {
                line = format!("{line}: {}", text("detail"));
            }
            if let Some(at) = d.get("address").and_then(Value::as_str) {
                line = format!("{line} ({at})");
            } else if let Some(file) = d.pointer("/range/filename").and_then(Value::as_str) {
                let row = d
                    .pointer("/range/start/line")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                line = format!("{line} ({file}:{row})");
            }
            if !found.contains(&line) {
                found.push(line);
            }
        };
        for m in self.messages() {
            if let Some(d) = m.get("diagnostic") {
                add(d);
            }
            // `validate -json` and `output`-style documents.
            if let Some(list) = m.get("diagnostics").and_then(Value::as_array) {
                list.iter().for_each(&mut add);
            }
        }
        if found.is_empty() {
            let text: String = self
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty() && !is_cli_config_noise(l))
                .map(|l| {
                    l.trim_matches(|c: char| c == '│' || c == '╷' || c == '╵' || c.is_whitespace())
                })
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            return if text.is_empty() {
                format!("exit code {}", self.code)
            } else {
                text
            };
        }
        found.join("; ")
    }
}

/// Whether a line of standard error is Terraform's warning about a missing
/// CLI configuration file (not about the run).
fn is_cli_config_noise(line: &str) -> bool {
    line.contains("problems with the CLI configuration")
        || line.contains("Unable to open CLI configuration file")
        || line.contains("The CLI configuration file at")
}

impl Runner {
    /// Runs `terraform args…` in `dir` with `env` added, appending the
    /// command and its messages to `log` (when given; `quiet` keeps its
    /// standard output out of the log). Fails only when it cannot run or
    /// passes the timeout; the exit code is the caller's to judge.
    pub async fn run(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: Option<&Path>,
        quiet: bool,
    ) -> Result<Finished> {
        let started = Instant::now();
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .current_dir(dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let name = args.first().copied().unwrap_or("").to_string();
        let cannot = |e: std::io::Error| Error::EngineFailed {
            engine: "terraform".into(),
            message: format!("cannot run {}: {e}", self.binary.display()),
        };
        let child = command.spawn().map_err(cannot)?;
        let output = match wait(child, self.timeout).await {
            Ok(Some(output)) => output,
            Ok(None) => {
                let message = format!(
                    "terraform {name} did not finish within {:?}; it was stopped",
                    self.timeout
                );
                if let Some(log) = log {
                    append(log, &format!("$ terraform {}\n{message}\n", args.join(" "))).await;
                }
                return Err(Error::EngineFailed {
                    engine: "terraform".into(),
                    message,
                });
            }
            Err(e) => {
                return Err(Error::EngineFailed {
                    engine: "terraform".into(),
                    message: format!("terraform {name}: {e}"),
                })
            }
        };
        let finished = Finished {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if let Some(log) = log {
            let mut text = format!("$ terraform {}\n", args.join(" "));
            if !quiet {
                text.push_str(&readable(&finished.stdout));
            }
            for line in finished.stderr.lines().filter(|l| !l.trim().is_empty()) {
                text.push_str(line);
                text.push('\n');
            }
            text.push_str(&format!(
                "# exit {} after {} ms\n\n",
                finished.code,
                started.elapsed().as_millis()
            ));
            append(log, &text).await;
        }
        Ok(finished)
    }
}

/// A `-json` stream as text: each message's `@message` (and a
/// diagnostic's detail); lines that are not JSON as they are.
fn readable(stdout: &str) -> String {
    let mut text = String::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(m) if m.get("@message").is_some() => {
                let level = m.get("@level").and_then(Value::as_str).unwrap_or("info");
                let message = m.get("@message").and_then(Value::as_str).unwrap_or("");
                text.push_str(&format!("[{level}] {message}\n"));
                if let Some(detail) = m.pointer("/diagnostic/detail").and_then(Value::as_str) {
                    if !detail.is_empty() {
                        text.push_str(&format!("        {}\n", detail.replace('\n', "\n        ")));
                    }
                }
            }
            Ok(_) => {}
            Err(_) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// Waits for `child`: its output, or `None` after it ran past `timeout`
/// and was killed. Threads drain its pipes while the task polls its exit
/// every few milliseconds (std's process API: tokio's `process` feature
/// would rebuild every crate depending on tokio for one child at a time).
async fn wait(mut child: Child, timeout: Duration) -> std::io::Result<Option<Output>> {
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buffer);
            }
            buffer
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let joined = |h: std::thread::JoinHandle<Vec<u8>>| h.join().unwrap_or_default();
    Ok(Some(Output {
        status,
        stdout: joined(stdout),
        stderr: joined(stderr),
    }))
}

/// Appends `text` to the log at `path`; a log that cannot be written is
/// reported, not fatal.
pub(crate) async fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(log = %path.display(), error = %e, "could not write a terraform run log");
    }
}
