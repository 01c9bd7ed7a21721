//! The pull itself: resolve the manifest (through an index for the wanted platform), fetch
//! the config, download missing layers three at a time while unpacking finished ones as they arrive,
//! then create, tag and digest-reference the image.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use arca_model::{Digest, Reference};
use arca_store::{Image, LayerBlob, Store};
use futures_util::stream::FuturesUnordered;
use futures_util::{StreamExt, stream};
use oci_client::Client;
use oci_client::secrets::RegistryAuth;
use tokio::sync::mpsc;

use crate::blob::{self, Source};
use crate::client::{client_for, oci_reference, plain_http, pull_client, registry_host};
use crate::error::{PullError, Target, from_oci, request_reason};
use crate::inflight::{self, Claim};
use crate::manifest::{self, ACCEPTED, Descriptor, Manifest, ManifestError, Wanted};
use crate::progress::{Reporter, Throttle};
use crate::{Progress, PullOptions, Pulled};

/// Layers downloaded at the same time.
const PARALLEL_DOWNLOADS: usize = 3;
/// The largest image config accepted (real ones are a few KiB).
const MAX_CONFIG: usize = 8 << 20;

/// See [`crate::pull`].
pub(crate) async fn pull(
    store: Arc<Store>,
    reference: &Reference,
    opts: &PullOptions,
    progress: mpsc::UnboundedSender<Progress>,
) -> Result<Pulled, PullError> {
    let report = Reporter::new(progress);
    let reference = reference.clone().with_default_tag();
    let wanted = wanted(opts)?;
    let pulled = pull_tag(&store, &reference, opts, &wanted, &report).await?;
    report.message(None, status(pulled.up_to_date, &reference.to_string()));
    Ok(pulled)
}

/// See [`crate::pull_all`].
pub(crate) async fn pull_all(
    store: Arc<Store>,
    repository: &Reference,
    opts: &PullOptions,
    progress: mpsc::UnboundedSender<Progress>,
) -> Result<Vec<Pulled>, PullError> {
    let report = Reporter::new(progress);
    let wanted = wanted(opts)?;
    let shown = repository.familiar_repo();
    let mut tags = None;
    let mut last = None;
    for remote in endpoints(repository, opts) {
        match remote.tags().await {
            Ok(t) => {
                tags = Some(t);
                break;
            }
            Err(e) => {
                tracing::debug!(registry = remote.registry(), error = %e, "listing tags failed");
                last = Some(e);
            }
        }
    }
    let Some(mut tags) = tags else {
        return Err(last.unwrap_or_else(|| PullError::ManifestNotFound {
            reference: shown.clone(),
        }));
    };
    tags.sort();
    if tags.is_empty() {
        return Err(PullError::ManifestNotFound { reference: shown });
    }
    let mut pulled = Vec::with_capacity(tags.len());
    for tag in tags {
        let reference = Reference::with_tag(&repository.full_repo(), &tag).map_err(|e| {
            PullError::InvalidManifest {
                reference: shown.clone(),
                reason: format!("the registry lists an invalid tag: {e}"),
            }
        })?;
        pulled.push(pull_tag(&store, &reference, opts, &wanted, &report).await?);
    }
    report.message(None, status(pulled.iter().all(|p| p.up_to_date), &shown));
    Ok(pulled)
}

fn wanted(opts: &PullOptions) -> Result<Wanted, PullError> {
    match &opts.platform {
        Some(p) => Wanted::parse(p).ok_or_else(|| PullError::InvalidPlatform(p.clone())),
        None => Ok(Wanted::host()),
    }
}

/// Docker's last line of a pull.
fn status(up_to_date: bool, shown: &str) -> String {
    if up_to_date {
        format!("Status: Image is up to date for {shown}")
    } else {
        format!("Status: Downloaded newer image for {shown}")
    }
}

/// Where `reference` can be pulled from, in order: the configured mirrors (Docker Hub images
/// only, as Docker does), then the registry itself.
fn endpoints(reference: &Reference, opts: &PullOptions) -> Vec<Remote> {
    let mut out = Vec::new();
    if reference.domain() == arca_model::DEFAULT_DOMAIN {
        for mirror in &opts.mirrors {
            let mut image = oci_reference(reference);
            image.set_mirror_registry(mirror.host.clone());
            let mut insecure = opts.insecure_registries.clone();
            if mirror.plain_http {
                insecure.push(mirror.host.clone());
            }
            let (client, auth) = pull_client(&mirror.host, &insecure, opts);
            let plain = plain_http(&mirror.host, &insecure);
            out.push(Remote::new(reference, image, client, auth, true, plain));
        }
    }
    let (client, auth) = client_for(reference, opts);
    let plain = plain_http(&registry_host(reference), &opts.insecure_registries);
    out.push(Remote::new(
        reference,
        oci_reference(reference),
        client,
        auth,
        false,
        plain,
    ));
    out
}

/// One tag (or digest) of a pull: everything but the final status line.
async fn pull_tag(
    store: &Arc<Store>,
    reference: &Reference,
    opts: &PullOptions,
    wanted: &Wanted,
    report: &Reporter,
) -> Result<Pulled, PullError> {
    let mut resolved = None;
    for remote in endpoints(reference, opts) {
        match remote.resolve(reference, wanted).await {
            Ok(r) => {
                resolved = Some((remote, r));
                break;
            }
            // A mirror that fails is skipped; the registry itself has the last word.
            Err(e) if remote.mirror => {
                tracing::info!(mirror = remote.registry(), reference = %reference, error = %e,
                    "registry mirror failed; trying the next endpoint");
            }
            Err(e) => return Err(e),
        }
    }
    let Some((remote, (digest, config, layers))) = resolved else {
        return Err(PullError::Task("no endpoint to pull from".into()));
    };
    let tag_or_digest = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, t) => t.unwrap_or("latest").to_owned(),
    };
    report.message(
        Some(&tag_or_digest),
        format!("Pulling from {}", reference.path()),
    );
    let tags: Vec<Reference> = match reference.digest() {
        Some(_) => Vec::new(),
        None => vec![reference.clone()],
    };
    let repo_digest: Reference = format!("{}@{digest}", reference.full_repo())
        .parse()
        .map_err(|e: arca_model::ReferenceError| PullError::InvalidManifest {
            reference: remote.shown.clone(),
            reason: e.to_string(),
        })?;

    // From the first look at the store to the image record: content this pull decides it
    // already has must not be deleted by a concurrent rmi's garbage collection.
    let _lease = store.lease();
    let existing = store.get(&config.digest.to_string()).ok();
    let up_to_date = match (&existing, tags.first()) {
        (Some(img), Some(tag)) => store.get(&tag.to_string()).is_ok_and(|t| t.id == img.id),
        (Some(_), None) => true,
        (None, _) => false,
    };
    let image = match existing {
        Some(img) => {
            if !up_to_date {
                for l in &layers {
                    report.layer(&l.digest, "Already exists");
                }
            }
            for tag in &tags {
                store.tag(&img.id, tag)?;
            }
            img
        }
        None => {
            let config_bytes = remote.config(&config).await?;
            download(store, &remote, report, &config_bytes, &layers, &tags).await?
        }
    };
    let store2 = store.clone();
    let id = image.id.clone();
    blocking(move || store2.add_repo_digest(&id, &repo_digest)).await?;
    let image = store.get(&image.id.to_string())?;
    report.message(None, format!("Digest: {digest}"));
    Ok(Pulled {
        reference: reference.clone(),
        image,
        digest,
        up_to_date,
    })
}

/// The registry side of one pull.
struct Remote {
    client: Client,
    auth: RegistryAuth,
    image: oci_client::Reference,
    /// The reference as the user sees it (`127.0.0.1:5000/x:1`).
    shown: String,
    repo: String,
    /// A registry mirror standing in for Docker Hub.
    mirror: bool,
    /// `http` or `https`, for messages.
    scheme: &'static str,
}

impl Remote {
    fn new(
        reference: &Reference,
        image: oci_client::Reference,
        client: Client,
        auth: RegistryAuth,
        mirror: bool,
        plain_http: bool,
    ) -> Self {
        Remote {
            scheme: if plain_http { "http" } else { "https" },
            image,
            client,
            auth,
            shown: reference.to_string(),
            repo: reference.familiar_repo(),
            mirror,
        }
    }

    /// With credentials, fetches the pull token first: `oci-client` would drop a token
    /// server's refusal and go on anonymously, and the user would read "pull access denied"
    /// instead of the refusal (Docker shows the latter).
    async fn authenticate(&self) -> Result<(), PullError> {
        if matches!(self.auth, RegistryAuth::Anonymous) {
            return Ok(());
        }
        match self
            .client
            .auth(&self.image, &self.auth, oci_client::RegistryOperation::Pull)
            .await
        {
            Ok(_) => Ok(()),
            Err(oci_client::errors::OciDistributionError::AuthenticationFailure(body)) => {
                let tag_or_digest = self.image.digest().or(self.image.tag()).unwrap_or("latest");
                Err(PullError::Unauthorized(format!(
                    "Head \"{}://{}/v2/{}/manifests/{tag_or_digest}\": {}",
                    self.scheme,
                    self.registry(),
                    self.image.repository(),
                    crate::auth::token_refusal(&body)
                )))
            }
            Err(e) => Err(self.manifest_err(e)),
        }
    }

    /// The repository's tags.
    async fn tags(&self) -> Result<Vec<String>, PullError> {
        let response = self
            .client
            .list_tags(&self.image, &self.auth, None, None)
            .await
            .map_err(|e| self.manifest_err(e))?;
        Ok(response.tags)
    }

    fn registry(&self) -> &str {
        self.image.resolve_registry()
    }

    fn manifest_err(&self, e: oci_client::errors::OciDistributionError) -> PullError {
        let target = Target::Manifest {
            reference: &self.shown,
            repo: &self.repo,
        };
        from_oci(e, self.registry(), target)
    }

    fn parse(&self, body: &[u8]) -> Result<Manifest, PullError> {
        Manifest::parse(body).map_err(|e| match e {
            ManifestError::MediaType(media_type) => PullError::MediaType {
                reference: self.shown.clone(),
                media_type,
            },
            ManifestError::Invalid(reason) => PullError::InvalidManifest {
                reference: self.shown.clone(),
                reason,
            },
        })
    }

    /// Fetches the manifest `image` names and checks it has digest `pin` (if any).
    async fn manifest(
        &self,
        image: &oci_client::Reference,
        pin: Option<&Digest>,
    ) -> Result<(Digest, Manifest), PullError> {
        let (body, _) = self
            .client
            .pull_manifest_raw(image, &self.auth, ACCEPTED)
            .await
            .map_err(|e| self.manifest_err(e))?;
        let digest = Digest::of(&body);
        if let Some(pin) = pin
            && *pin != digest
        {
            return Err(PullError::ManifestDigest {
                reference: self.shown.clone(),
                expected: pin.clone(),
                actual: digest,
            });
        }
        Ok((digest, self.parse(&body)?))
    }

    /// The digest to record (the index's, if there is one), config and layers of the image
    /// for `wanted`.
    async fn resolve(
        &self,
        reference: &Reference,
        wanted: &Wanted,
    ) -> Result<(Digest, Descriptor, Vec<Descriptor>), PullError> {
        self.authenticate().await?;
        let (digest, top) = self.manifest(&self.image, reference.digest()).await?;
        let manifest = match top {
            Manifest::Index { manifests } => {
                let entry = manifest::select(&manifests, wanted).ok_or_else(|| {
                    PullError::NoMatchingPlatform {
                        platform: wanted.to_string(),
                    }
                })?;
                let child = self.image.clone_with_digest(entry.digest.to_string());
                self.manifest(&child, Some(&entry.digest)).await?.1
            }
            image => image,
        };
        match manifest {
            Manifest::Image { config, layers } => Ok((digest, config, layers)),
            Manifest::Index { .. } => Err(PullError::InvalidManifest {
                reference: self.shown.clone(),
                reason: "an index inside an index".into(),
            }),
        }
    }

    /// The image config blob, verified against its digest.
    async fn config(&self, config: &Descriptor) -> Result<Vec<u8>, PullError> {
        let too_big = || PullError::InvalidManifest {
            reference: self.shown.clone(),
            reason: format!("config {} is larger than {MAX_CONFIG} bytes", config.digest),
        };
        if config.size > MAX_CONFIG as u64 {
            return Err(too_big());
        }
        let name = config.digest.to_string();
        let mut stream = self
            .client
            .pull_blob_stream(&self.image, name.as_str())
            .await
            .map_err(|e| from_oci(e, self.registry(), Target::Blob(&config.digest)))?;
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => body.extend_from_slice(&c),
                // oci-client's digest check; ours below names the blob.
                Err(e)
                    if e.get_ref()
                        .is_some_and(|i| i.is::<oci_client::errors::DigestError>()) =>
                {
                    break;
                }
                Err(e) => {
                    return Err(PullError::Unavailable {
                        registry: self.registry().to_owned(),
                        reason: format!("reading config {}: {}", config.digest, request_reason(&e)),
                    });
                }
            }
            if body.len() > MAX_CONFIG {
                return Err(too_big());
            }
        }
        let actual = Digest::of(&body);
        if actual != config.digest {
            return Err(PullError::BlobDigest {
                layer: config.digest.clone(),
                actual,
            });
        }
        Ok(body)
    }
}

/// Downloads the missing layers (unpacking each in order as soon as it and those below it are
/// there), then creates and tags the image.
async fn download(
    store: &Arc<Store>,
    remote: &Remote,
    report: &Reporter,
    config: &[u8],
    layers: &[Descriptor],
    tags: &[Reference],
) -> Result<Image, PullError> {
    let diff_ids =
        arca_store::config_diff_ids(config).map_err(|reason| PullError::InvalidManifest {
            reference: remote.shown.clone(),
            reason,
        })?;
    if diff_ids.len() != layers.len() {
        return Err(PullError::InvalidManifest {
            reference: remote.shown.clone(),
            reason: format!(
                "the config lists {} layers but the manifest {}",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    let mut present = HashSet::new();
    let mut to_fetch: Vec<&Descriptor> = Vec::new();
    for l in layers {
        if store.has_blob(&l.digest) {
            if present.insert(l.digest.clone()) {
                report.layer(&l.digest, "Already exists");
            }
        } else if !to_fetch.iter().any(|f| f.digest == l.digest) {
            report.layer(&l.digest, "Pulling fs layer");
            to_fetch.push(l);
        }
    }
    for l in to_fetch.iter().skip(PARALLEL_DOWNLOADS) {
        report.layer(&l.digest, "Waiting");
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Digest>();
    let src = Source {
        client: &remote.client,
        image: &remote.image,
        registry: remote.registry(),
        store: store.clone(),
    };
    // The futures are built eagerly: a lazy `map` closure in the stream would make the pull
    // future non-`Send` (a higher-ranked lifetime rustc cannot prove).
    let fetches: Vec<_> = to_fetch
        .into_iter()
        .map(|l| fetch_layer(&src, report, l, done_tx.clone()))
        .collect();
    drop(done_tx);
    let downloads = async move {
        let mut s = stream::iter(fetches).buffer_unordered(PARALLEL_DOWNLOADS);
        while let Some(r) = s.next().await {
            r?;
        }
        Ok::<_, PullError>(())
    };
    // Each layer unpacks into a snapshot of its own, so layers unpack as soon as their blob
    // has arrived, several at a time (decompressing and hashing is CPU work), not in order.
    let wanted: HashMap<Digest, Digest> = layers
        .iter()
        .zip(&diff_ids)
        .filter(|(l, _)| !present.contains(&l.digest))
        .map(|(l, d)| (l.digest.clone(), d.clone()))
        .collect();
    let extract = async {
        let limit = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, PARALLEL_DOWNLOADS);
        let mut verified = HashSet::new();
        let mut queue: VecDeque<(Digest, Digest)> = VecDeque::new();
        let mut unpacking = FuturesUnordered::new();
        let mut downloads_done = false;
        loop {
            while unpacking.len() < limit
                && let Some((blob, diff_id)) = queue.pop_front()
            {
                report.layer(&blob, "Extracting");
                let s = store.clone();
                unpacking.push(async move {
                    let (b, d) = (blob.clone(), diff_id.clone());
                    blocking(move || s.unpack_layer(&b, &d)).await?;
                    Ok::<_, PullError>((blob, diff_id))
                });
            }
            if downloads_done && queue.is_empty() && unpacking.is_empty() {
                // All unpacked, or the downloads failed (their error is reported).
                return Ok::<_, PullError>(verified);
            }
            tokio::select! {
                arrived = done_rx.recv(), if !downloads_done => match arrived {
                    Some(d) => {
                        if let Some(diff_id) = wanted.get(&d) {
                            queue.push_back((d, diff_id.clone()));
                        }
                    }
                    None => downloads_done = true,
                },
                Some(done) = unpacking.next(), if !unpacking.is_empty() => {
                    let (blob, diff_id) = done?;
                    report.layer(&blob, "Pull complete");
                    verified.insert((blob, diff_id));
                }
            }
        }
    };
    let ((), verified) = tokio::try_join!(downloads, extract)?;
    let blobs: Vec<LayerBlob> = layers
        .iter()
        .map(|l| LayerBlob {
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
        })
        .collect();
    let (s, config, tags) = (store.clone(), config.to_vec(), tags.to_vec());
    let image =
        blocking(move || s.create_image_verified(&config, &blobs, &tags, &verified)).await?;
    Ok(image)
}

/// Downloads one layer blob with progress, then tells the extractor it is there.
async fn fetch_layer(
    src: &Source<'_>,
    report: &Reporter,
    l: &Descriptor,
    done: mpsc::UnboundedSender<Digest>,
) -> Result<(), PullError> {
    let mut throttle = Throttle::default();
    loop {
        match inflight::claim(src.store.root(), &l.digest) {
            Claim::Leader(leader) => {
                // A leader that just finished may have published it after we looked.
                if !src.store.has_blob(&l.digest) {
                    blob::fetch(src, &l.digest, |n| {
                        leader.progress(n);
                        if throttle.ready(Instant::now()) {
                            report.layer_bytes(&l.digest, "Downloading", n, l.size);
                        }
                    })
                    .await?;
                }
                break;
            }
            Claim::Follower(mut bytes) => {
                // Another pull is downloading this blob: show its progress as ours.
                while bytes.changed().await.is_ok() {
                    let n = *bytes.borrow_and_update();
                    if throttle.ready(Instant::now()) {
                        report.layer_bytes(&l.digest, "Downloading", n, l.size);
                    }
                }
                if src.store.has_blob(&l.digest) {
                    break;
                }
                // That pull failed or was cancelled: claim again (and likely download).
            }
        }
    }
    report.layer(&l.digest, "Verifying Checksum");
    report.layer(&l.digest, "Download complete");
    // The extractor may be gone (it failed); its error is the one reported.
    let _ = done.send(l.digest.clone());
    Ok(())
}

/// Runs store work (disk I/O, unpacking) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, arca_store::StoreError> + Send + 'static,
) -> Result<T, PullError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PullError::Task(e.to_string()))?
        .map_err(PullError::from)
}
