//! Opening a block store from a URL.

use std::sync::Arc;

use hamt::{BlockStore, MemoryStore};

use crate::error::CliError;

/// URL forms this build understands.
fn expected() -> String {
    let mut forms = vec!["mem:"];
    if cfg!(feature = "sled") {
        forms.push("sled:PATH");
    }
    if cfg!(feature = "kubo") {
        forms.push("kubo+http://HOST:PORT");
    }
    if cfg!(feature = "s3") {
        forms.push("s3://BUCKET/PREFIX?endpoint=URL");
    }
    if cfg!(feature = "embedded") {
        forms.push("ipfs-embedded:PATH, ipfs-embedded:mem");
    }
    forms.join(", ")
}

/// An open store, with what must happen before the process exits.
pub(crate) struct OpenStore {
    pub(crate) store: Arc<dyn BlockStore>,
    #[cfg(feature = "sled")]
    sled: Option<hamt_store_sled::SledStore>,
    #[cfg(feature = "kubo")]
    pub(crate) kubo: Option<hamt_store_kubo::KuboStore>,
    #[cfg(feature = "s3")]
    pub(crate) s3: Option<hamt_store_s3::S3Store>,
    #[cfg(feature = "embedded")]
    pub(crate) embedded: Option<hamt_store_embedded::EmbeddedStore>,
}

impl OpenStore {
    fn new(store: Arc<dyn BlockStore>) -> Self {
        Self {
            store,
            #[cfg(feature = "sled")]
            sled: None,
            #[cfg(feature = "kubo")]
            kubo: None,
            #[cfg(feature = "s3")]
            s3: None,
            #[cfg(feature = "embedded")]
            embedded: None,
        }
    }

    /// Opens `url`, or the default store (a sled database in the user's data directory).
    pub(crate) async fn open(url: Option<&str>) -> Result<Self, CliError> {
        let url = match url {
            Some(u) => u.to_owned(),
            None => default_url()?,
        };
        if url == "mem:" || url == "memory:" {
            return Ok(Self::new(Arc::new(MemoryStore::new())));
        }
        #[cfg(feature = "sled")]
        if url.starts_with("sled:") {
            let sled = hamt_store_sled::SledStore::builder_from_url(&url)?.open()?;
            let mut open = Self::new(Arc::new(sled.clone()));
            open.sled = Some(sled);
            return Ok(open);
        }
        #[cfg(feature = "kubo")]
        if url.starts_with("kubo+") {
            let kubo = hamt_store_kubo::KuboStore::from_url(&url)?;
            let mut open = Self::new(Arc::new(kubo.clone()));
            open.kubo = Some(kubo);
            return Ok(open);
        }
        #[cfg(feature = "s3")]
        if url.starts_with("s3://") {
            let s3 = hamt_store_s3::S3Store::from_url(&url)?;
            let mut open = Self::new(Arc::new(s3.clone()));
            open.s3 = Some(s3);
            return Ok(open);
        }
        #[cfg(feature = "embedded")]
        if url.starts_with("ipfs-embedded:") {
            let node = hamt_store_embedded::EmbeddedStore::from_url(&url).await?;
            let mut open = Self::new(Arc::new(node.clone()));
            open.embedded = Some(node);
            return Ok(open);
        }
        Err(CliError::UnknownStore {
            url,
            expected: expected(),
        })
    }

    /// Makes every write durable.
    pub(crate) async fn close(self) -> Result<(), CliError> {
        #[cfg(feature = "sled")]
        if let Some(sled) = self.sled {
            sled.flush().await?;
        }
        #[cfg(feature = "s3")]
        if let Some(s3) = self.s3 {
            s3.sync().await?;
        }
        #[cfg(feature = "embedded")]
        if let Some(node) = self.embedded {
            node.shutdown().await?;
        }
        Ok(())
    }
}

#[cfg(feature = "sled")]
fn default_url() -> Result<String, CliError> {
    let dir = dirs::data_dir().ok_or_else(|| {
        CliError::BadInput(
            "no data directory for the default store (set HOME or pass --store)".into(),
        )
    })?;
    Ok(format!(
        "sled:{}",
        dir.join("hamt").join("blocks").display()
    ))
}

#[cfg(not(feature = "sled"))]
fn default_url() -> Result<String, CliError> {
    Err(CliError::BadInput(
        "this build has no default store: pass --store mem: or build with the sled feature".into(),
    ))
}
