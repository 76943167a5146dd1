//! Opening a block store from a URL.

use std::sync::Arc;

use hamt::{BlockStore, MemoryStore};

use crate::error::CliError;

/// URL schemes this build understands.
const EXPECTED: &str = match (cfg!(feature = "sled"), cfg!(feature = "kubo")) {
    (true, true) => "mem:, sled:PATH or kubo+http://HOST:PORT",
    (true, false) => "mem: or sled:PATH (this build has no kubo support)",
    (false, true) => "mem: or kubo+http://HOST:PORT (this build has no sled support)",
    (false, false) => "mem: (this build has no sled or kubo support)",
};

/// An open store, with what must happen before the process exits.
pub(crate) struct OpenStore {
    pub(crate) store: Arc<dyn BlockStore>,
    #[cfg(feature = "sled")]
    sled: Option<hamt_store_sled::SledStore>,
    #[cfg(feature = "kubo")]
    pub(crate) kubo: Option<hamt_store_kubo::KuboStore>,
}

impl OpenStore {
    /// Opens `url`, or the default store (a sled database in the user's data directory).
    pub(crate) fn open(url: Option<&str>) -> Result<Self, CliError> {
        let url = match url {
            Some(u) => u.to_owned(),
            None => default_url()?,
        };
        if url == "mem:" || url == "memory:" {
            return Ok(Self {
                store: Arc::new(MemoryStore::new()),
                #[cfg(feature = "sled")]
                sled: None,
                #[cfg(feature = "kubo")]
                kubo: None,
            });
        }
        #[cfg(feature = "sled")]
        if url.starts_with("sled:") {
            let builder = hamt_store_sled::SledStore::builder_from_url(&url)?;
            let sled = builder.open()?;
            return Ok(Self {
                store: Arc::new(sled.clone()),
                sled: Some(sled),
                #[cfg(feature = "kubo")]
                kubo: None,
            });
        }
        #[cfg(feature = "kubo")]
        if url.starts_with("kubo+") {
            let kubo = hamt_store_kubo::KuboStore::from_url(&url)?;
            return Ok(Self {
                store: Arc::new(kubo.clone()),
                #[cfg(feature = "sled")]
                sled: None,
                kubo: Some(kubo),
            });
        }
        Err(CliError::UnknownStore {
            url,
            expected: EXPECTED,
        })
    }

    /// Makes every write durable.
    pub(crate) async fn close(self) -> Result<(), CliError> {
        #[cfg(feature = "sled")]
        if let Some(sled) = self.sled {
            sled.flush().await?;
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
