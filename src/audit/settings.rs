//! What the audit trail records (`[audit]` of the config file).

use serde::Deserialize;

use super::CallKind;

/// `[audit]`: every mutating API call is recorded while `enabled`; pushes, pulls and
/// read-only API calls as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    pub enabled: bool,
    /// Registry pushes: layer uploads and manifest PUTs (as ECR's InitiateLayerUpload,
    /// UploadLayerPart, CompleteLayerUpload, PutImage).
    pub pushes: bool,
    /// Registry pulls: manifest and blob GETs (as BatchGetImage, GetDownloadUrlForLayer).
    pub pulls: bool,
    /// Read-only API calls (Describe*, Get*, List*, ...).
    pub reads: bool,
    /// Also append each record, as one JSON line, to this file.
    pub file: Option<std::path::PathBuf>,
    /// Records older than this are deleted (CloudTrail's event history keeps 90 days).
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            pushes: true,
            pulls: false,
            reads: false,
            file: None,
            retention_days: 90,
        }
    }
}

impl AuditSettings {
    pub fn wants(&self, kind: CallKind) -> bool {
        self.enabled
            && match kind {
                CallKind::Mutation => true,
                CallKind::Push => self.pushes,
                CallKind::Pull => self.pulls,
                CallKind::Read => self.reads,
            }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.retention_days == 0 {
            return Err("[audit] retention_days must be at least 1".into());
        }
        Ok(())
    }
}
