//! Images and layers: login, the layer upload operations, PutImage, BatchGetImage,
//! listings, deletes, referrers and storage classes.

use super::*;
use crate::storage_class::{self, StorageClass};

pub(super) async fn get_authorization_token(
    service: &Service,
    auth: &Authenticator,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let ids = i
        .strings("registryIds", 10)?
        .unwrap_or_default()
        .iter()
        .map(|id| {
            AccountId::parse(id).ok_or_else(|| {
                ApiError::invalid("registryIds", "must satisfy regular expression '[0-9]{12}'")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = service.authorization_tokens(ctx, auth, &ids).await?;
    let items: Vec<Value> = data
        .iter()
        .map(|d| json!({ "authorizationToken": d.token, "expiresAt": d.expires_at as f64, "proxyEndpoint": d.proxy_endpoint }))
        .collect();
    Ok(json!({ "authorizationData": items }))
}

pub(super) async fn batch_check_layer_availability(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let digests = i
        .strings("layerDigests", 100)?
        .ok_or_else(|| ApiError::invalid("layerDigests", "Member must not be null"))?;
    let checks = service.check_layers(ctx, &name, &digests).await?;
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for c in checks {
        match c {
            LayerCheck::Available { digest, size } => layers.push(json!({
                "layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": size,
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            })),
            LayerCheck::Failed {
                digest,
                code,
                reason,
            } => failures.push(json!({
                "layerDigest": digest, "failureCode": code, "failureReason": reason,
            })),
        }
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}

pub(super) async fn initiate_layer_upload(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let id = service.initiate_layer_upload(ctx, &name).await?;
    Ok(json!({ "uploadId": id.to_string(), "partSize": PART_SIZE }))
}

pub(super) async fn upload_layer_part(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let upload_id = i.str_req("uploadId")?;
    let first = i
        .i64_opt("partFirstByte")?
        .ok_or_else(|| ApiError::invalid("partFirstByte", "Member must not be null"))?;
    let last = i
        .i64_opt("partLastByte")?
        .ok_or_else(|| ApiError::invalid("partLastByte", "Member must not be null"))?;
    if first < 0 || last < 0 {
        return Err(ApiError::invalid(
            "partFirstByte",
            "Member must have value greater than or equal to 0",
        ));
    }
    let blob = STANDARD
        .decode(i.str_req("layerPartBlob")?)
        .map_err(|_| ApiError::serialization("layerPartBlob is not valid base64"))?;
    if blob.len() > 20 * 1024 * 1024 {
        return Err(ApiError::invalid(
            "layerPartBlob",
            "Member must have length less than or equal to 20971520",
        ));
    }
    let last_received = service
        .upload_layer_part(
            ctx,
            &name,
            upload_id,
            first as u64,
            last as u64,
            bytes::Bytes::from(blob),
        )
        .await
        .map_err(|e| with_upload_context(e.into(), ctx, &name, upload_id))?;
    Ok(json!({
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "uploadId": upload_id, "lastByteReceived": last_received,
    }))
}

/// InvalidLayerPartException carries the request's identifiers at top level.
pub(super) fn with_upload_context(
    mut e: ApiError,
    ctx: &Context,
    name: &RepositoryName,
    upload_id: &str,
) -> ApiError {
    if e.code == "InvalidLayerPartException" {
        let mut extra = e.extra.take().unwrap_or_else(|| json!({}));
        if let Some(o) = extra.as_object_mut() {
            o.insert("registryId".into(), json!(ctx.registry.account_id));
            o.insert("repositoryName".into(), json!(name.as_str()));
            o.insert("uploadId".into(), json!(upload_id));
        }
        e.extra = Some(extra);
    }
    e
}

pub(super) async fn complete_layer_upload(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let upload_id = i.str_req("uploadId")?;
    let digests = i
        .strings("layerDigests", 100)?
        .ok_or_else(|| ApiError::invalid("layerDigests", "Member must not be null"))?;
    let digest = parse_digest("layerDigests", &digests[0])?;
    service
        .complete_layer_upload(ctx, &name, upload_id, &digest)
        .await?;
    Ok(json!({
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "uploadId": upload_id, "layerDigest": digest.to_string(),
    }))
}

pub(super) async fn put_image(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let manifest = i.str_req("imageManifest")?;
    if manifest.is_empty() || manifest.len() > crate::oci::manifest::MAX_MANIFEST_BYTES {
        return Err(ApiError::invalid(
            "imageManifest",
            "Member must have length between 1 and 4194304",
        ));
    }
    let media_type = i.str_opt("imageManifestMediaType")?;
    let tag = i
        .str_opt("imageTag")?
        .map(|t| parse_tag("imageTag", t))
        .transpose()?;
    let digest = i
        .str_opt("imageDigest")?
        .map(|d| parse_digest("imageDigest", d))
        .transpose()?;
    let (digest, stored) = service
        .put_image(
            ctx,
            &name,
            manifest,
            media_type,
            tag.as_ref(),
            digest.as_ref(),
        )
        .await?;
    let id = ImageId {
        digest: Some(digest.to_string()),
        tag: tag.map(|t| t.to_string()),
    };
    Ok(json!({ "image": {
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "imageId": image_id_json(&id), "imageManifest": manifest,
        "imageManifestMediaType": stored.media_type,
    }}))
}

pub(super) fn failures_json(failures: &[crate::service::ImageFailure]) -> Vec<Value> {
    failures
        .iter()
        .map(|f| json!({ "imageId": image_id_json(&f.id), "failureCode": f.code, "failureReason": f.reason }))
        .collect()
}

pub(super) async fn batch_get_image(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let ids = i.image_ids("imageIds", true)?.unwrap_or_default();
    let accepted = i.strings("acceptedMediaTypes", 100)?.unwrap_or_default();
    let (images, failures) = service.batch_get_image(ctx, &name, &ids, &accepted).await?;
    let images: Vec<Value> = images
        .iter()
        .map(|img| {
            json!({
                "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
                "imageId": image_id_json(&img.id),
                "imageManifest": String::from_utf8_lossy(&img.manifest.body),
                "imageManifestMediaType": img.manifest.media_type,
            })
        })
        .collect();
    Ok(json!({ "images": images, "failures": failures_json(&failures) }))
}

pub(super) async fn get_download_url_for_layer(
    service: &Service,
    auth: &Authenticator,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let digest = parse_digest("layerDigest", i.str_req("layerDigest")?)?;
    let url = service.download_url(ctx, auth, &name, &digest).await?;
    Ok(json!({ "downloadUrl": url, "layerDigest": digest.to_string() }))
}

pub(super) async fn list_images(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let limit = i.max_results(1000, 100)?;
    let after = i.next_token()?.map(|t| {
        let (d, tag) = t.split_once('\n').unwrap_or((&t, ""));
        (d.to_owned(), tag.to_owned())
    });
    let page = service
        .list_images(ctx, &name, i.image_filter()?, after, limit)
        .await?;
    let ids: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            image_id_json(&ImageId {
                digest: Some(r.digest.clone()),
                tag: r.tag.clone(),
            })
        })
        .collect();
    Ok(with_next(json!({ "imageIds": ids }), page.next))
}

pub(super) async fn describe_images(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let ids = i.image_ids("imageIds", false)?;
    if ids.is_some() && (i.get("maxResults").is_some() || i.get("nextToken").is_some()) {
        return Err(ApiError::invalid(
            "imageIds",
            "maxResults and nextToken cannot be used together with imageIds",
        ));
    }
    let limit = i.max_results(1000, 100)?;
    let after = i.next_token()?;
    let page = service
        .describe_images(
            ctx,
            &name,
            ids.as_deref(),
            i.image_filter()?,
            after.as_deref(),
            limit,
        )
        .await?;
    let details: Vec<Value> = page
        .items
        .iter()
        .map(|d| image_detail_json(ctx, &name, d))
        .collect();
    Ok(with_next(json!({ "imageDetails": details }), page.next))
}

pub(super) async fn batch_delete_image(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let ids = i.image_ids("imageIds", true)?.unwrap_or_default();
    let (deleted, failures) = service.batch_delete_image(ctx, &name, &ids).await?;
    let deleted: Vec<Value> = deleted.iter().map(image_id_json).collect();
    Ok(json!({ "imageIds": deleted, "failures": failures_json(&failures) }))
}

pub(super) async fn list_image_referrers(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let subject = i
        .get("subjectId")
        .and_then(|s| s.get("imageDigest"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("subjectId.imageDigest", "Member must not be null"))?;
    let subject = parse_digest("subjectId.imageDigest", subject)?;
    let types: Vec<String> = i
        .get("filter")
        .and_then(|f| f.get("artifactTypes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if types.len() > 5 {
        return Err(ApiError::invalid(
            "filter.artifactTypes",
            "Member must have length less than or equal to 5",
        ));
    }
    let limit = i.max_results(50, 20)?;
    let after = i.next_token()?;
    let page = service
        .list_referrers(ctx, &name, &subject, &types, after.as_deref(), limit)
        .await?;
    let referrers: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("digest".into(), json!(r.digest));
            o.insert("mediaType".into(), json!(r.media_type));
            put_opt(
                &mut o,
                "artifactType",
                r.artifact_type.clone().map(Value::from),
            );
            o.insert("size".into(), json!(r.size));
            put_opt(
                &mut o,
                "annotations",
                r.annotations
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok()),
            );
            o.insert("artifactStatus".into(), json!("ACTIVE"));
            Value::Object(o)
        })
        .collect();
    Ok(with_next(json!({ "referrers": referrers }), page.next))
}

pub(super) async fn update_image_storage_class(
    service: &Service,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let id = i.image_id()?;
    let target = StorageClass::parse(i.str_req("targetStorageClass")?)
        .ok_or_else(|| ApiError::invalid("targetStorageClass", storage_class::INVALID))?;
    let (digest, status) = service
        .update_image_storage_class(ctx, &name, &id, target)
        .await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "imageId": image_id_json(&ImageId { digest: Some(digest), tag: id.tag }),
        "imageStatus": status,
    }))
}
