//! Lifecycle policies: the rule grammar (`policy`) and which images a policy acts on
//! (`eval`). Pure logic: the operation layer (`service::lifecycle`) loads images, runs
//! the evaluation for previews and for the background job, and applies the verdicts.

pub mod eval;
pub mod policy;

pub use eval::{evaluate, Image, Verdict};
pub use policy::{LifecyclePolicy, RuleAction, StorageClass};
