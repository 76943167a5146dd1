//! [`S3StoreBuilder`]: the options of an [`S3Store`], from the environment (or a list of
//! variables standing in for it) and a store URL, and where its credentials come from.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hamt::HashAlg;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use crate::error::Error;
use crate::store::{DEFAULT_PACK_SIZE, Parts, S3Store, SCHEME};

/// `object_store`'s default limit on the time spent retrying one request.
const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_mins(3);
/// `object_store`'s default number of retries.
const DEFAULT_RETRIES: usize = 10;

/// Where an [`S3Store`] gets its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// From the environment only: `AWS_ACCESS_KEY_ID` with `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`), a web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` with
    /// `AWS_ROLE_ARN`) or a container's (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or
    /// `…_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`). With none of them,
    /// [`S3StoreBuilder::build`] fails with [`Error::MissingCredentials`]: the instance
    /// metadata service is never asked.
    #[default]
    Environment,
    /// None: requests are not signed (a public bucket).
    Anonymous,
    /// From the environment, else from the instance metadata service
    /// (`http://169.254.169.254`, or `AWS_METADATA_ENDPOINT`), as on an EC2 instance with a
    /// role. Only when asked for: elsewhere that address does not answer and every request
    /// would wait for it.
    InstanceMetadata,
}

/// Options for an [`S3Store`]: [`S3Store::builder`] or [`S3Store::builder_from_url`].
///
/// Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, …, as `object_store` reads them; see [`Credentials`]) and are never
/// printed.
#[must_use]
pub struct S3StoreBuilder {
    s3: AmazonS3Builder,
    objects: Option<Arc<dyn ObjectStore>>,
    bucket: Option<String>,
    endpoint: Option<String>,
    prefix: String,
    pack_size: usize,
    hash_alg: HashAlg,
    credentials: Credentials,
    retry: Option<(usize, Duration)>,
}

impl fmt::Debug for S3StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3StoreBuilder")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("pack_size", &self.pack_size)
            .finish_non_exhaustive()
    }
}

impl S3StoreBuilder {
    /// Options read from the process environment (`AWS_*`, as `object_store` reads them).
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Options read from `vars` as if they were the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_ENDPOINT`, …; other names are ignored), for a process that keeps its own
    /// environment out of the store.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut s3 = AmazonS3Builder::new();
        for (key, value) in vars {
            if !key.starts_with("AWS_") {
                continue;
            }
            if let Ok(config) = key.to_ascii_lowercase().parse() {
                s3 = s3.with_config(config, value);
            }
        }
        Self {
            s3,
            objects: None,
            bucket: None,
            endpoint: None,
            prefix: String::new(),
            pack_size: DEFAULT_PACK_SIZE,
            hash_alg: HashAlg::Blake3,
            credentials: Credentials::default(),
            retry: None,
        }
    }

    /// Applies a store URL to these options: `s3://BUCKET/PREFIX?endpoint=URL&region=R&
    /// pack-size=64MiB&credentials=env|anonymous|instance&timeout=SECONDS&retries=N`.
    /// Credentials are never part of the URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`].
    pub fn with_url(self, text: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: text.into(),
            reason: reason.into(),
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != SCHEME {
            return Err(bad("the scheme must be s3://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "put credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, not the URL",
            ));
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("no bucket"))?;
        let mut builder = self.bucket(bucket).prefix(url.path());
        let seconds = |value: &str, what: &str| {
            value
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| bad(&format!("{what} must be a number of seconds")))
        };
        for (key, value) in url.query_pairs() {
            builder = match key.as_ref() {
                "endpoint" => builder.endpoint(value.as_ref()),
                "region" => builder.region(value.as_ref()),
                "pack-size" => builder.pack_size(
                    parse_size(&value).ok_or_else(|| bad("pack-size must look like 64MiB"))?,
                ),
                "credentials" => builder.credentials(match value.as_ref() {
                    "env" => Credentials::Environment,
                    "anonymous" => Credentials::Anonymous,
                    "instance" => Credentials::InstanceMetadata,
                    _ => return Err(bad("credentials must be env, anonymous or instance")),
                }),
                "timeout" => builder.timeout(seconds(&value, "timeout")?),
                "retries" => {
                    let n = value
                        .parse()
                        .map_err(|_| bad("retries must be a whole number"))?;
                    builder.retries(n, DEFAULT_RETRY_TIMEOUT)
                }
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            };
        }
        Ok(builder)
    }

    /// The bucket.
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        let bucket = bucket.into();
        self.s3 = self.s3.with_bucket_name(&bucket);
        self.bucket = Some(bucket);
        self
    }

    /// The key prefix the store lives under (`""` for the bucket's top).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        prefix.into().trim_matches('/').clone_into(&mut self.prefix);
        self
    }

    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); `http://` ones are allowed.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        self.s3 = self
            .s3
            .with_endpoint(&endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
        self.endpoint = Some(endpoint);
        self
    }

    /// The region (default: `AWS_REGION`, else `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.s3 = self.s3.with_region(region);
        self
    }

    /// Target size of a pack (default 64 MiB); packs over 16 MiB upload in parts.
    pub fn pack_size(mut self, bytes: usize) -> Self {
        self.pack_size = bytes.max(1);
        self
    }

    /// The hash new blocks are addressed with (default BLAKE3, as py-hamt's HAMTs use).
    pub fn hash_alg(mut self, hash_alg: HashAlg) -> Self {
        self.hash_alg = hash_alg;
        self
    }

    /// Where credentials come from (default: [`Credentials::Environment`]).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Longest time one request may take, body included (default 30 s; connecting alone,
    /// 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.s3 = self.s3.with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}ms", timeout.as_millis().max(1)),
        );
        self
    }

    /// Retries of a request that failed in a temporary way (connection errors, timeouts of
    /// reads, 5xx answers), within `retry_timeout` from its first attempt, with exponential
    /// backoff from 100 ms (default: 10 retries within 3 min).
    pub fn retries(mut self, retries: usize, retry_timeout: Duration) -> Self {
        self.retry = Some((retries, retry_timeout));
        self
    }

    /// Uses this object store instead of building an S3 client (another cloud, a local
    /// directory, memory).
    pub fn object_store(mut self, objects: Arc<dyn ObjectStore>) -> Self {
        self.objects = Some(objects);
        self
    }

    /// Builds the store; nothing is requested until the first read or write.
    ///
    /// # Errors
    /// [`Error::MissingCredentials`] when there are no credentials (see [`Credentials`]);
    /// [`Error::ObjectStore`] for a configuration the S3 client refuses (no bucket, say).
    pub fn build(self) -> Result<S3Store, Error> {
        let objects = if let Some(objects) = self.objects {
            objects
        } else {
            let mut s3 = self.s3;
            match credential_source(&s3, self.credentials)? {
                Source::Unsigned => s3 = s3.with_skip_signature(true),
                Source::Found | Source::InstanceMetadata => {}
            }
            if let Some((max_retries, retry_timeout)) = self.retry {
                s3 = s3.with_retry(RetryConfig {
                    max_retries,
                    retry_timeout,
                    ..RetryConfig::default()
                });
            }
            Arc::new(s3.build()?)
        };
        let describe = format!(
            "s3://{}/{}{}",
            self.bucket.as_deref().unwrap_or("?"),
            self.prefix,
            self.endpoint
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
        Ok(S3Store::from_parts(Parts {
            objects,
            prefix: Path::from(self.prefix),
            describe,
            pack_size: self.pack_size,
            hash_alg: self.hash_alg,
            retries: self.retry.map_or(DEFAULT_RETRIES, |r| r.0),
            retry_timeout: self.retry.map_or(DEFAULT_RETRY_TIMEOUT, |r| r.1),
        }))
    }
}

/// How the S3 client will authenticate, decided before it is built.
enum Source {
    /// Credentials from the environment.
    Found,
    /// No signature.
    Unsigned,
    /// `object_store`'s last resort, asked for explicitly.
    InstanceMetadata,
}

/// Decides where credentials come from, so that the instance metadata service is asked only
/// when the caller said so: `object_store` falls back to it whenever nothing else is set,
/// and off EC2 every request then waits on an address that never answers.
fn credential_source(s3: &AmazonS3Builder, wanted: Credentials) -> Result<Source, Error> {
    let set = |key: AmazonS3ConfigKey| s3.get_config_value(&key).is_some_and(|v| !v.is_empty());
    let key_id = set(AmazonS3ConfigKey::AccessKeyId);
    let secret = set(AmazonS3ConfigKey::SecretAccessKey);
    if key_id != secret {
        let (have, lack) = if key_id {
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        } else {
            ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
        };
        return Err(Error::MissingCredentials {
            reason: format!("{have} is set but {lack} is not"),
        });
    }
    let unsigned = s3
        .get_config_value(&AmazonS3ConfigKey::SkipSignature)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if wanted == Credentials::Anonymous || unsigned {
        return Ok(Source::Unsigned);
    }
    let found = key_id
        || (set(AmazonS3ConfigKey::WebIdentityTokenFile) && set(AmazonS3ConfigKey::RoleArn))
        || set(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
        || (set(AmazonS3ConfigKey::ContainerCredentialsFullUri)
            && set(AmazonS3ConfigKey::ContainerAuthorizationTokenFile));
    match (found, wanted) {
        (true, _) => Ok(Source::Found),
        (false, Credentials::InstanceMetadata) => Ok(Source::InstanceMetadata),
        (false, _) => Err(Error::MissingCredentials {
            reason:
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE \
                     with AWS_ROLE_ARN, or a container's credentials); for a public bucket add \
                     credentials=anonymous to the URL, on an EC2 instance with a role \
                     credentials=instance"
                    .into(),
        }),
    }
}

/// `64MiB`, `512KiB`, `1GiB`, `4096`.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}
