//! IAM: the policy language, its evaluation, and AWS's managed ECR policies.
//!
//! Pure logic: no storage and no I/O. The operation layer (`service`) gathers the
//! policies that apply to a request and asks [`eval::evaluate`] for a decision.

pub mod condition;
pub mod context;
pub mod eval;
pub mod policy;
pub mod wildcard;

#[cfg(test)]
mod props;

pub use context::{Caller, CallerKind, RequestContext};
pub use eval::{Decision, Request};
pub use policy::{Policy, PolicyError, PolicyKind};

/// An AWS managed policy Berth has built in.
pub struct ManagedPolicy {
    pub name: &'static str,
    pub path: &'static str,
    pub description: &'static str,
    pub version: &'static str,
    pub document: &'static str,
}

impl ManagedPolicy {
    pub fn arn(&self) -> String {
        crate::aws::Arn::policy("aws", self.path, self.name).to_string()
    }
}

/// AWS's managed policies for ECR (their published documents), plus the two general
/// ones tutorials attach to administrators.
pub const MANAGED: &[ManagedPolicy] = &[
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryReadOnly",
        path: "/",
        description: "Provides read-only access to Amazon EC2 Container Registry repositories.",
        version: "v3",
        document: include_str!("managed/AmazonEC2ContainerRegistryReadOnly.json"),
    },
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryPowerUser",
        path: "/",
        description: "Provides full access to Amazon EC2 Container Registry repositories, but does not allow repository deletion or policy changes.",
        version: "v3",
        document: include_str!("managed/AmazonEC2ContainerRegistryPowerUser.json"),
    },
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryFullAccess",
        path: "/",
        description: "Provides administrative access to Amazon ECR resources",
        version: "v3",
        document: include_str!("managed/AmazonEC2ContainerRegistryFullAccess.json"),
    },
    ManagedPolicy {
        name: "AmazonEC2ContainerRegistryPullOnly",
        path: "/",
        description: "Provides permissions to pull images from Amazon ECR repositories.",
        version: "v1",
        document: include_str!("managed/AmazonEC2ContainerRegistryPullOnly.json"),
    },
    ManagedPolicy {
        name: "AmazonECSTaskExecutionRolePolicy",
        path: "/service-role/",
        description: "Provides access to other AWS service resources that are required to run Amazon ECS tasks",
        version: "v1",
        document: include_str!("managed/AmazonECSTaskExecutionRolePolicy.json"),
    },
    ManagedPolicy {
        name: "AdministratorAccess",
        path: "/",
        description: "Provides full access to AWS services and resources.",
        version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    },
    ManagedPolicy {
        name: "IAMFullAccess",
        path: "/",
        description: "Provides full access to IAM via the AWS Management Console.",
        version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","organizations:DescribeAccount","organizations:DescribeOrganization","organizations:DescribeOrganizationalUnit","organizations:DescribePolicy","organizations:ListChildren","organizations:ListParents","organizations:ListPoliciesForTarget","organizations:ListRoots","organizations:ListPolicies","organizations:ListTargetsForPolicy"],"Resource":"*"}]}"#,
    },
];

/// The built-in managed policy with this ARN.
#[cfg(test)]
pub fn managed(arn: &str) -> Option<&'static ManagedPolicy> {
    MANAGED.iter().find(|p| p.arn() == arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_managed_policy_parses() {
        for p in MANAGED {
            Policy::parse(p.document, PolicyKind::Identity)
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        assert!(
            managed("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
                .is_some()
        );
    }
}
