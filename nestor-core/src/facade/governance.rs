//! Governance through the one door: the policies in force (the synced
//! sources' stored files compiled on the first operation that needs them)
//! and what they say about a document or a request without writing
//! anything (`nestor policy check`, `POST /api/v1/teams/{team}/validate`).

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::Nestor;
use crate::error::Result;
use crate::model::{Composition, DeploymentRequest, ResourceDefinition};
use crate::policy::{PolicyMessage, PolicyVerdict};

/// What the policies are asked about.
#[derive(Debug, Clone)]
pub enum PolicySubject {
    /// A definition, as its publish would be judged.
    Definition(Box<ResourceDefinition>),
    /// A composition, as its publish would be judged (its references must
    /// resolve).
    Composition(Box<Composition>),
    /// A deployment request, as its plan would be judged (it must resolve).
    Deployment(Box<DeploymentRequest>),
}

/// The policies' answer about one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyCheck {
    /// `name:version`, `team/name:version`, or `team/environment/name`.
    pub subject: String,
    /// Whether no policy denied it.
    pub allowed: bool,
    /// The messages of `deny` and `violation` rules.
    pub denials: Vec<PolicyMessage>,
    /// The messages of `warn` rules.
    pub warnings: Vec<PolicyMessage>,
}

impl PolicyCheck {
    fn new(subject: String, verdict: PolicyVerdict) -> PolicyCheck {
        PolicyCheck {
            subject,
            allowed: verdict.denials.is_empty(),
            denials: verdict.denials,
            warnings: verdict.warnings,
        }
    }
}

impl Nestor {
    /// Compiles the stored policy files of every synced source into the
    /// shared policies, once per process: a process that starts over a
    /// store whose sources are already synced enforces their policies from
    /// its first operation, before any sync of its own.
    pub(super) async fn policies_ready(&self) -> Result<()> {
        if self.inner.policies_restored.load(Ordering::Acquire) {
            return Ok(());
        }
        self.inner.sync.restore_policies().await?;
        self.inner.policies_restored.store(true, Ordering::Release);
        Ok(())
    }

    /// What the policies in force say about `subject`; nothing is
    /// published, planned or recorded.
    pub async fn evaluate_policies(&self, subject: PolicySubject) -> Result<PolicyCheck> {
        self.policies_ready().await?;
        Ok(match subject {
            PolicySubject::Definition(d) => {
                PolicyCheck::new(d.subject(), self.inner.catalog.evaluate_policies(&d)?)
            }
            PolicySubject::Composition(c) => PolicyCheck::new(
                c.subject(),
                self.inner.composer.evaluate_policies(&c).await?,
            ),
            PolicySubject::Deployment(r) => PolicyCheck::new(
                format!("{}/{}/{}", r.team, r.environment, r.name),
                self.inner.orchestrator.evaluate_policies(&r).await?,
            ),
        })
    }
}
