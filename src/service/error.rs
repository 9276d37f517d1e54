//! The service layer's error: every condition a caller can meet, in ECR's terms.
//! Each front end maps it to its wire format in exactly one place.

use crate::aws::AccountId;
use crate::oci::name::{InvalidName, InvalidTag};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "The repository with name '{name}' does not exist in the registry with id '{registry_id}'"
    )]
    RepositoryNotFound {
        name: String,
        registry_id: AccountId,
    },
    #[error(
        "The repository with name '{name}' already exists in the registry with id '{registry_id}'"
    )]
    RepositoryAlreadyExists {
        name: String,
        registry_id: AccountId,
    },
    #[error("Invalid parameter at 'repositoryName' failed to satisfy constraint: '{0}'")]
    InvalidRepositoryName(InvalidName),
    #[error("Invalid parameter at 'imageTag' failed to satisfy constraint: '{0}'")]
    InvalidTag(InvalidTag),
    #[error("Invalid parameter at 'imageDigest' failed to satisfy constraint: 'must satisfy regular expression '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+''")]
    InvalidDigest,
    #[error("The layer does not exist in the repository")]
    BlobNotFound,
    #[error("The layer is referenced by an image in the repository and cannot be deleted")]
    BlobReferenced,
    #[error("The image is referenced by a manifest list or index in the repository and cannot be deleted")]
    ManifestReferenced,
    #[error("Invalid page size: {0}")]
    InvalidPageSize(String),
    #[error("The upload does not exist")]
    UploadNotFound,
    /// A chunk did not start where the staged bytes end.
    #[error("The upload part does not start at byte {size}")]
    UploadOutOfOrder { size: u64 },
    #[error("The upload was interrupted")]
    UploadInterrupted,
    #[error("The uploaded content does not match the digest")]
    DigestMismatch,
    #[error("The requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("Requested image not found")]
    ManifestNotFound,
    /// In the archive storage class: it cannot be pulled until restored.
    #[error("The image is archived; restore it with UpdateImageStorageClass to pull it")]
    ImageArchived,
    /// Stored, but in a media type the client did not accept.
    #[error("Requested image not found: stored as '{0}', which the Accept header excludes")]
    ManifestNotAcceptable(String),
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("The manifest exceeds the maximum size of 4194304 bytes")]
    ManifestTooLarge,
    #[error("Layers with digests '[{}]' required for pushing image into repository with name '{name}' in the registry with id '{registry_id}' do not exist", digests.join(", "))]
    ManifestBlobsMissing {
        digests: Vec<String>,
        name: String,
        registry_id: AccountId,
    },
    #[error("Manifests with digests '[{}]' referenced by the index do not exist in the repository with name '{name}' in the registry with id '{registry_id}'", digests.join(", "))]
    ManifestChildrenMissing {
        digests: Vec<String>,
        name: String,
        registry_id: AccountId,
    },
    #[error("{0}")]
    AccessDenied(String),
    #[error("The image tag '{tag}' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable.")]
    TagImmutable { tag: String, name: String },
    #[error("Image with digest '{digest}' and tag '{}' already exists in the repository with name '{name}' in registry with id '{registry_id}'", tag.as_deref().unwrap_or("null"))]
    ImageAlreadyExists {
        digest: String,
        tag: Option<String>,
        name: String,
        registry_id: AccountId,
    },
    #[error("Provided digest {given} does not match the digest {computed} of the image manifest")]
    ImageDigestMismatch { given: String, computed: String },
    #[error("The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{name}' in the registry with id '{registry_id}'", digest.as_deref().unwrap_or("null"), tag.as_deref().unwrap_or("null"))]
    ImageNotFound {
        digest: Option<String>,
        tag: Option<String>,
        name: String,
        registry_id: AccountId,
    },
    #[error("The repository with name '{name}' in registry with id '{registry_id}' cannot be deleted because it still contains images")]
    RepositoryNotEmpty {
        name: String,
        registry_id: AccountId,
    },
    #[error("The repository can carry at most 50 tags")]
    TooManyTags,
    #[error("{reason}")]
    InvalidLayerPart {
        reason: String,
        last_valid_byte: Option<u64>,
    },
    #[error("The upload with id '{0}' contains no layer parts")]
    EmptyUpload(String),
    #[error("Layer parts must be at least 5 MiB in size.")]
    LayerPartTooSmall,
    #[error("The layer '{0}' already exists in the repository")]
    LayerAlreadyExists(String),
    #[error("The layer digest '{0}' does not match the uploaded content")]
    InvalidLayer(String),
    #[error("{0}")]
    LayersNotFound(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("Repository policy does not exist for the repository with name '{name}' in the registry with id '{registry_id}'")]
    RepositoryPolicyNotFound {
        name: String,
        registry_id: AccountId,
    },
    #[error("Registry policy does not exist in the registry with id '{0}'")]
    RegistryPolicyNotFound(AccountId),
    /// IAM's own errors (the IAM/STS front end names them).
    #[error("{1}")]
    Iam(IamErrorKind, String),
    /// ECR errors of the governance operations (lifecycle, templates, settings), named
    /// by their exception.
    #[error("{1}")]
    Ecr(EcrErrorKind, String),
    /// Secrets Manager's errors (its front end names them).
    #[error("{1}")]
    Secrets(super::secrets_manager::SecretsErrorKind, String),
    #[error("{1}")]
    Signer(super::signer::SignerErrorKind, String),
    /// A pull-through cache's upstream failed a fetch the request needed.
    #[error("{0}")]
    Upstream(crate::upstream::UpstreamError),
    /// Transient contention; the client may retry.
    #[error("The service is busy; retry the request")]
    Busy,
    /// The disk holding the registry's data (blobs or metadata) is full.
    #[error("Insufficient storage: the disk holding the registry's data is full")]
    StorageFull,
    /// Anything else. The message is logged, never sent to clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::meta::Error> for Error {
    fn from(e: crate::meta::Error) -> Self {
        match e {
            crate::meta::Error::Busy => Error::Busy,
            crate::meta::Error::Full => Error::StorageFull,
            crate::meta::Error::Backend(m) => Error::Internal(m),
        }
    }
}

impl From<crate::blobs::Error> for Error {
    fn from(e: crate::blobs::Error) -> Self {
        use crate::blobs::Error as B;
        match e {
            B::NotFound => Error::BlobNotFound,
            B::OffsetMismatch { size } => Error::UploadOutOfOrder { size },
            B::DigestMismatch => Error::DigestMismatch,
            B::BodyInterrupted(_) => Error::UploadInterrupted,
            B::Full => Error::StorageFull,
            B::Backend(m) => Error::Internal(m),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The IAM error codes the IAM and STS front end returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamErrorKind {
    NoSuchEntity,
    EntityAlreadyExists,
    DeleteConflict,
    LimitExceeded,
    MalformedPolicyDocument,
    InvalidInput,
    ValidationError,
    PasswordPolicyViolation,
}

/// ECR exceptions that carry only a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcrErrorKind {
    LifecyclePolicyNotFound,
    LifecyclePolicyPreviewNotFound,
    TemplateAlreadyExists,
    TemplateNotFound,
    ExclusionAlreadyExists,
    ExclusionNotFound,
    LimitExceeded,
    ScanNotFound,
    UnsupportedImageType,
    PullThroughCacheRuleAlreadyExists,
    PullThroughCacheRuleNotFound,
    UnsupportedUpstreamRegistry,
    SecretNotFound,
    UnableToAccessSecret,
    UnableToDecryptSecretValue,
    ReplicationBackfillInProgress,
    ReplicationBackfillNotFound,
    ReplicationBackfillInvalidStatus,
    SigningConfigurationNotFound,
    /// Semantic validation on the newer registry-level operations.
    Validation,
}

impl EcrErrorKind {
    /// The exception name (`__type`).
    pub fn exception(self) -> &'static str {
        match self {
            EcrErrorKind::LifecyclePolicyNotFound => "LifecyclePolicyNotFoundException",
            EcrErrorKind::LifecyclePolicyPreviewNotFound => {
                "LifecyclePolicyPreviewNotFoundException"
            }
            EcrErrorKind::TemplateAlreadyExists => "TemplateAlreadyExistsException",
            EcrErrorKind::TemplateNotFound => "TemplateNotFoundException",
            EcrErrorKind::ExclusionAlreadyExists => "ExclusionAlreadyExistsException",
            EcrErrorKind::ExclusionNotFound => "ExclusionNotFoundException",
            EcrErrorKind::LimitExceeded => "LimitExceededException",
            EcrErrorKind::ScanNotFound => "ScanNotFoundException",
            EcrErrorKind::UnsupportedImageType => "UnsupportedImageTypeException",
            EcrErrorKind::PullThroughCacheRuleAlreadyExists => {
                "PullThroughCacheRuleAlreadyExistsException"
            }
            EcrErrorKind::PullThroughCacheRuleNotFound => "PullThroughCacheRuleNotFoundException",
            EcrErrorKind::UnsupportedUpstreamRegistry => "UnsupportedUpstreamRegistryException",
            EcrErrorKind::SecretNotFound => "SecretNotFoundException",
            EcrErrorKind::UnableToAccessSecret => "UnableToAccessSecretException",
            EcrErrorKind::UnableToDecryptSecretValue => "UnableToDecryptSecretValueException",
            EcrErrorKind::ReplicationBackfillInProgress => "ReplicationBackfillInProgressException",
            EcrErrorKind::ReplicationBackfillNotFound => "ReplicationBackfillNotFoundException",
            EcrErrorKind::ReplicationBackfillInvalidStatus => {
                "ReplicationBackfillInvalidStatusException"
            }
            EcrErrorKind::SigningConfigurationNotFound => "SigningConfigurationNotFoundException",
            EcrErrorKind::Validation => "ValidationException",
        }
    }
}

impl Error {
    pub fn ecr(kind: EcrErrorKind, message: impl Into<String>) -> Error {
        Error::Ecr(kind, message.into())
    }

    pub fn iam(kind: IamErrorKind, message: impl Into<String>) -> Error {
        Error::Iam(kind, message.into())
    }
}
