//! OCI vocabulary: digests, repository names, tags, manifests and their media types.
//!
//! Pure code with no I/O. Everything the registry receives is parsed into these types at
//! the edge, so the layers below never see an unvalidated name, tag or digest.

pub mod convert;
pub mod digest;
pub mod manifest;
pub mod name;

pub use digest::{Algorithm, Digest};
pub use name::{Reference, RepositoryName, Tag};
