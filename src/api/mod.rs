//! API front ends on the AWS protocols. Today: ECR's JSON 1.1 control plane.

pub mod ecr;
pub mod iam;
