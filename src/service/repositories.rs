//! Repositories: create (by hand, on push, from a template), describe, delete, their
//! settings and resource tags, the catalog, and the registry they live in.

use super::*;
use crate::meta::RepositorySettings;
use crate::mutability::TagMutability;
use crate::resource_tags::ResourceTags;

/// Maximum resource tags per repository.
pub const MAX_RESOURCE_TAGS: i64 = 50;

impl Service {
    /// `<account>.dkr.ecr.<region>.<domain>[:port]`.
    pub fn registry_host(&self, account_id: &str, region: &str) -> String {
        self.options.public.registry_host(account_id, region)
    }

    pub fn repository_uri(&self, ctx: &Context, name: &RepositoryName) -> String {
        format!(
            "{}/{name}",
            self.registry_host(&ctx.registry.account_id, &ctx.registry.region)
        )
    }

    pub fn repository_arn(ctx: &Context, name: &RepositoryName) -> String {
        super::authz::repository_arn(&ctx.registry, name.as_str())
    }

    /// A repository's encryption as asked for (type, optional KMS key), by ECR's rules:
    /// AES256 takes no key; KMS without a key uses the account's AWS-managed key.
    pub fn encryption_settings(
        ctx: &Context,
        encryption_type: &str,
        kms_key: Option<String>,
    ) -> Result<(String, Option<String>)> {
        let invalid = |member: &str, constraint: &str| {
            Error::InvalidParameter(format!(
                "Invalid parameter at '{member}' failed to satisfy constraint: '{constraint}'"
            ))
        };
        if !["AES256", "KMS", "KMS_DSSE"].contains(&encryption_type) {
            return Err(invalid(
                "encryptionConfiguration.encryptionType",
                "Member must satisfy enum value set: [AES256, KMS_DSSE, KMS]",
            ));
        }
        let key = match (encryption_type, kms_key) {
            ("AES256", Some(_)) => {
                return Err(invalid(
                    "encryptionConfiguration.kmsKey",
                    "kmsKey is only valid with KMS encryption",
                ))
            }
            ("AES256", None) => None,
            (_, Some(k)) => Some(k),
            (_, None) => Some(aws_managed_ecr_key(ctx)),
        };
        Ok((encryption_type.to_owned(), key))
    }

    // ---- repositories ----

    pub async fn create_repository_with(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        settings: &RepositorySettings,
        tags: &ResourceTags,
    ) -> Result<Repository> {
        let tags = tags.as_pairs();
        self.authorize_creation(ctx, name, tags).await?;
        if tags.len() as i64 > MAX_RESOURCE_TAGS {
            return Err(Error::TooManyTags);
        }
        let created = self
            .meta
            .create_repository(&ctx.registry, name, settings, tags, clock::now_ms())
            .await?;
        if let Some(repo) = created {
            return Ok(repo);
        }
        // The name is taken. If that repository's policy denies this caller, the caller
        // is told so, and does not learn that the repository exists.
        self.authorize_tagged(ctx, Action::CreateRepository, name, tags)
            .await?;
        Err(Error::RepositoryAlreadyExists {
            name: name.to_string(),
            registry_id: ctx.registry.account_id.clone(),
        })
    }

    /// The named repositories (all must exist), or a page of all of them.
    pub async fn describe_repositories(
        &self,
        ctx: &Context,
        names: Option<&[RepositoryName]>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Listing<Repository>> {
        if let Some(names) = names {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                self.authorize(ctx, Action::DescribeRepositories, name)
                    .await?;
                out.push(self.repository(ctx, name).await?);
            }
            return Ok(Listing {
                items: out,
                next: None,
            });
        }
        self.authorize_registry(ctx, Action::DescribeRepositories)
            .await?;
        let items = self
            .meta
            .repositories_page(&ctx.registry, after.unwrap_or(""), i64::from(limit) + 1)
            .await?;
        Ok(Listing::from_overfetch(items, limit, |r| {
            r.name.to_string()
        }))
    }

    pub async fn delete_repository(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        force: bool,
    ) -> Result<Repository> {
        self.authorize(ctx, Action::DeleteRepository, name).await?;
        let repo = self.repository(ctx, name).await?;
        if !self.meta.delete_repository(repo.id, !force).await? {
            return Err(Error::RepositoryNotEmpty {
                name: name.to_string(),
                registry_id: ctx.registry.account_id.clone(),
            });
        }
        Ok(repo)
    }

    pub async fn put_image_tag_mutability(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        mutability: &TagMutability,
    ) -> Result<()> {
        self.authorize(ctx, Action::PutImageTagMutability, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.meta.set_tag_mutability(repo.id, mutability).await?;
        Ok(())
    }

    pub async fn put_image_scanning_configuration(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        scan_on_push: bool,
    ) -> Result<()> {
        self.authorize(ctx, Action::PutImageScanningConfiguration, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        self.meta.set_scan_on_push(repo.id, scan_on_push).await?;
        Ok(())
    }

    // ---- resource tags ----

    pub async fn list_resource_tags(
        &self,
        ctx: &Context,
        name: &RepositoryName,
    ) -> Result<Vec<(String, String)>> {
        self.authorize(ctx, Action::ListTagsForResource, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        Ok(self.meta.resource_tags(repo.id).await?)
    }

    pub async fn tag_resource(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        tags: &ResourceTags,
    ) -> Result<()> {
        let tags = tags.as_pairs();
        self.authorize_tagged(ctx, Action::TagResource, name, tags)
            .await?;
        let repo = self.repository(ctx, name).await?;
        if self
            .meta
            .put_resource_tags(repo.id, tags, MAX_RESOURCE_TAGS)
            .await?
        {
            Ok(())
        } else {
            Err(Error::TooManyTags)
        }
    }

    pub async fn untag_resource(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        keys: &[String],
    ) -> Result<()> {
        self.authorize(ctx, Action::UntagResource, name).await?;
        let repo = self.repository(ctx, name).await?;
        Ok(self.meta.delete_resource_tags(repo.id, keys).await?)
    }

    // ---- repositories ----

    /// Repository names of the caller's registry (the `_catalog` endpoint).
    pub async fn catalog(
        &self,
        ctx: &Context,
        last: Option<&RepositoryName>,
        n: Option<u32>,
    ) -> Result<Listing<String>> {
        self.authorize_registry(ctx, Action::DescribeRepositories)
            .await?;
        let limit = n.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
        if limit == 0 {
            return Ok(Listing::empty());
        }
        let items = self
            .meta
            .repository_names(
                &ctx.registry,
                last.map_or("", RepositoryName::as_str),
                i64::from(limit) + 1,
            )
            .await?;
        Ok(Listing::from_overfetch(items, limit, Clone::clone))
    }
}

/// The ARN of the account's AWS-managed key for ECR (alias `aws/ecr`), which ECR names
/// when KMS encryption is asked for without a key: one key id per account and region.
fn aws_managed_ecr_key(ctx: &Context) -> String {
    use sha2::Digest as _;
    let (region, account) = (&ctx.registry.region, &ctx.registry.account_id);
    let h = sha2::Sha256::digest(format!("aws/ecr\n{account}\n{region}").as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    let id = uuid::Builder::from_random_bytes(id).into_uuid();
    crate::aws::Arn::kms_key(account, region, &id.to_string()).to_string()
}
