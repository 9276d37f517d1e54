//! CloudTrail's record shape, built from what a front end noted of a call.

use serde_json::{json, Map, Value};

use crate::auth::Principal;
use crate::meta::AuditRecord;

/// CloudTrail's record version Berth writes.
const EVENT_VERSION: &str = "1.09";

/// The service a call was made to (`eventSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    Ecr,
    Iam,
    Sts,
    SecretsManager,
    Signer,
    /// The console's sign-in (`ConsoleLogin`).
    Signin,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Ecr => "ecr.amazonaws.com",
            EventSource::Iam => "iam.amazonaws.com",
            EventSource::Sts => "sts.amazonaws.com",
            EventSource::SecretsManager => "secretsmanager.amazonaws.com",
            EventSource::Signer => "signer.amazonaws.com",
            EventSource::Signin => "signin.amazonaws.com",
        }
    }
}

/// What kind of call, for what the settings record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// An API call that changes something.
    Mutation,
    /// A read-only API call.
    Read,
    /// A registry push (layer upload, manifest PUT).
    Push,
    /// A registry pull (manifest or blob GET).
    Pull,
}

impl CallKind {
    /// The kind of an API operation, by CloudTrail's reading of its name.
    pub fn of_operation(name: &str) -> CallKind {
        const READS: [&str; 7] = [
            "Describe",
            "Get",
            "List",
            "BatchGet",
            "BatchCheck",
            "Validate",
            "GetCallerIdentity",
        ];
        if READS.iter().any(|p| name.starts_with(p)) {
            CallKind::Read
        } else {
            CallKind::Mutation
        }
    }

    fn read_only(self) -> bool {
        matches!(self, CallKind::Read | CallKind::Pull)
    }
}

/// One call, as the front end understood it.
#[derive(Debug, Clone)]
pub struct AuditCall {
    pub source: EventSource,
    pub name: &'static str,
    pub principal: Principal,
    /// The account whose resources the call addressed (`recipientAccountId`).
    pub account_id: String,
    pub region: String,
    pub kind: CallKind,
    /// The request's parameters; secrets are removed when the record is built.
    pub parameters: Value,
    pub repository: Option<String>,
    /// (errorCode, errorMessage) of a failed call.
    pub error: Option<(String, String)>,
}

impl AuditCall {
    /// A call to ECR by `principal` on `registry` (the API, a registry push or pull, a
    /// console form), not failed yet.
    pub fn ecr(
        principal: &Principal,
        registry: &crate::meta::RegistryKey,
        name: &'static str,
        kind: CallKind,
        repository: Option<String>,
        parameters: Value,
    ) -> AuditCall {
        AuditCall {
            source: EventSource::Ecr,
            name,
            principal: principal.clone(),
            account_id: registry.account_id.to_string(),
            region: registry.region.to_string(),
            kind,
            parameters,
            repository,
            error: None,
        }
    }
}

/// What the HTTP layer knows of the request.
#[derive(Debug, Clone)]
pub struct Received {
    pub request_id: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub at_ms: i64,
}

/// Parameter names whose values are secrets: never written to a record.
const SECRET_KEYS: [&str; 10] = [
    "password",
    "newpassword",
    "oldpassword",
    "secretstring",
    "secretbinary",
    "secretaccesskey",
    "sessiontoken",
    "privatekey",
    "layerpartblob",
    "authorizationtoken",
];

/// `value` without secret members, at any depth.
fn redacted(value: Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()))
                .map(|(k, v)| (k, redacted(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(redacted).collect()),
        other => other,
    }
}

/// CloudTrail's `userIdentity` for a principal.
pub fn user_identity(p: &Principal) -> Value {
    match p {
        Principal::Root { account_id, .. } => json!({
            "type": "Root",
            "principalId": account_id,
            "arn": p.arn(),
            "accountId": account_id,
        }),
        Principal::User {
            account_id,
            name,
            id,
            arn,
            ..
        } => json!({
            "type": "IAMUser",
            "principalId": id,
            "arn": arn,
            "accountId": account_id,
            "userName": name,
        }),
        Principal::AssumedRole {
            account_id,
            role_name,
            role_id,
            role_arn,
            ..
        } => json!({
            "type": "AssumedRole",
            "principalId": p.user_id(),
            "arn": p.arn(),
            "accountId": account_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": role_arn,
                    "accountId": account_id,
                    "userName": role_name,
                },
                "attributes": { "mfaAuthenticated": "false" },
            },
        }),
        Principal::System { .. } => json!({
            "type": "AWSService",
            "invokedBy": "berth",
        }),
    }
}

/// The user name a record can be looked up by (CloudTrail's `Username` attribute).
fn user_name(p: &Principal) -> Option<String> {
    match p {
        Principal::Root { .. } => Some("root".into()),
        Principal::User { name, .. } => Some(name.clone()),
        Principal::AssumedRole { session_name, .. } => Some(session_name.clone()),
        Principal::System { .. } => None,
    }
}

pub fn iso_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl AuditCall {
    /// The stored record: CloudTrail's shape, plus the columns it is looked up by.
    pub fn into_record(self, r: &Received) -> AuditRecord {
        let event_id = uuid::Uuid::new_v4().to_string();
        let mut rec = Map::new();
        rec.insert("eventVersion".into(), json!(EVENT_VERSION));
        rec.insert("userIdentity".into(), user_identity(&self.principal));
        rec.insert("eventTime".into(), json!(iso_time(r.at_ms)));
        rec.insert("eventSource".into(), json!(self.source.as_str()));
        rec.insert("eventName".into(), json!(self.name));
        rec.insert("awsRegion".into(), json!(self.region));
        rec.insert(
            "sourceIPAddress".into(),
            json!(r.source_ip.as_deref().unwrap_or("berth")),
        );
        rec.insert(
            "userAgent".into(),
            json!(r.user_agent.as_deref().unwrap_or("")),
        );
        if let Some((code, message)) = &self.error {
            // A failed ConsoleLogin has a message and no code.
            if !code.is_empty() {
                rec.insert("errorCode".into(), json!(code));
            }
            rec.insert("errorMessage".into(), json!(message));
        }
        let sign_in = self.source == EventSource::Signin;
        let parameters = match redacted(self.parameters) {
            Value::Object(m) if m.is_empty() => Value::Null,
            v => v,
        };
        rec.insert("requestParameters".into(), parameters);
        let response = if sign_in {
            let result = if self.error.is_some() {
                "Failure"
            } else {
                "Success"
            };
            json!({ "ConsoleLogin": result })
        } else {
            Value::Null
        };
        rec.insert("responseElements".into(), response);
        rec.insert("requestID".into(), json!(r.request_id));
        rec.insert("eventID".into(), json!(event_id));
        rec.insert("readOnly".into(), json!(self.kind.read_only()));
        if let Some(repo) = &self.repository {
            rec.insert(
                "resources".into(),
                json!([{
                    "accountId": self.account_id,
                    "type": "AWS::ECR::Repository",
                    "ARN": crate::aws::Arn::repository(&self.account_id, &self.region, repo).to_string(),
                }]),
            );
        }
        let event_type = if sign_in {
            "AwsConsoleSignIn"
        } else {
            "AwsApiCall"
        };
        rec.insert("eventType".into(), json!(event_type));
        rec.insert("managementEvent".into(), json!(true));
        rec.insert("recipientAccountId".into(), json!(self.account_id));
        rec.insert("eventCategory".into(), json!("Management"));
        AuditRecord {
            event_id,
            event_time: r.at_ms,
            account_id: self.account_id,
            region: self.region,
            event_source: self.source.as_str().to_owned(),
            event_name: self.name.to_owned(),
            user_arn: (!self.principal.is_system()).then(|| self.principal.arn()),
            user_name: user_name(&self.principal),
            repository: self.repository,
            read_only: self.kind.read_only(),
            error_code: self.error.map(|(c, _)| c).filter(|c| !c.is_empty()),
            record: Value::Object(rec).to_string(),
        }
    }
}

/// One image a lifecycle run expired or transitioned.
pub struct LifecycleImageAction {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at_ms: i64,
    pub rule_priority: i64,
}

/// The record of lifecycle actions on one repository: CloudTrail's
/// `PolicyExecutionEvent`, an `AwsServiceEvent`. `rules` is the policy's rules in
/// CloudTrail's wording (`lifecycleEventRules`). ECR writes one record per ten images;
/// so does Berth.
pub fn policy_execution_record(
    account_id: &str,
    region: &str,
    repository: &str,
    at_ms: i64,
    rules: &Value,
    images: &[LifecycleImageAction],
) -> AuditRecord {
    let event_id = uuid::Uuid::new_v4().to_string();
    let actions: Vec<Value> = images
        .iter()
        .map(|i| {
            json!({
                "lifecycleEventImage": {
                    "digest": i.digest,
                    "tagStatus": if i.tags.is_empty() { "Untagged" } else { "Tagged" },
                    "tagList": i.tags,
                    "pushedAt": i.pushed_at_ms,
                },
                "rulePriority": i.rule_priority,
            })
        })
        .collect();
    let rec = json!({
        "eventVersion": EVENT_VERSION,
        "userIdentity": { "accountId": account_id, "invokedBy": "AWS Internal" },
        "eventTime": iso_time(at_ms),
        "eventSource": "ecr.amazonaws.com",
        "eventName": "PolicyExecutionEvent",
        "awsRegion": region,
        "sourceIPAddress": "AWS Internal",
        "userAgent": "AWS Internal",
        "requestParameters": null,
        "responseElements": null,
        "eventID": event_id,
        "readOnly": true,
        "resources": [{
            "accountId": account_id,
            "type": "AWS::ECR::Repository",
            "ARN": crate::aws::Arn::repository(account_id, region, repository).to_string(),
        }],
        "eventType": "AwsServiceEvent",
        "managementEvent": true,
        "recipientAccountId": account_id,
        "serviceEventDetails": {
            "repositoryName": repository,
            "lifecycleEventPolicy": {
                "lifecycleEventRules": rules,
                "lastEvaluatedAt": at_ms,
                "policyVersion": 1,
            },
            "lifecycleEventImageActions": actions,
            "lifecycleEventFailureDetails": [],
        },
        "eventCategory": "Management",
    });
    AuditRecord {
        event_id,
        event_time: at_ms,
        account_id: account_id.to_owned(),
        region: region.to_owned(),
        event_source: "ecr.amazonaws.com".into(),
        event_name: "PolicyExecutionEvent".into(),
        user_arn: None,
        user_name: None,
        repository: Some(repository.to_owned()),
        read_only: true,
        error_code: None,
        record: rec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_at_any_depth() {
        let v = json!({
            "UserName": "alice",
            "Password": "hunter2",
            "nested": [{"SecretString": "s", "keep": 1}],
            "layerPartBlob": "AAAA",
        });
        let r = redacted(v);
        let text = r.to_string();
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("SecretString"));
        assert!(!text.contains("AAAA"));
        assert!(text.contains("alice") && text.contains("keep"));
    }

    #[test]
    fn read_operations_are_read_only() {
        assert_eq!(
            CallKind::of_operation("DescribeRepositories"),
            CallKind::Read
        );
        assert_eq!(CallKind::of_operation("BatchGetImage"), CallKind::Read);
        assert_eq!(CallKind::of_operation("PutImage"), CallKind::Mutation);
        assert_eq!(
            CallKind::of_operation("BatchDeleteImage"),
            CallKind::Mutation
        );
    }
}
