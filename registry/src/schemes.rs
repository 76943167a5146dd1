//! The table of schemes, and opening a URL through it. This is the one place in the
//! workspace that knows which URL scheme belongs to which backend.

#[cfg(feature = "embedded")]
use std::path::Path;
use std::sync::Arc;

use hamt::MemoryStore;

use crate::error::Error;
use crate::opened::OpenStore;

/// One kind of store URL.
#[derive(Debug)]
pub struct Scheme {
    /// The URL schemes it answers to, as its backend crate exports them.
    pub names: &'static [&'static str],
    /// The URL forms, for help texts (`sled:PATH[?cache=SIZE]`).
    pub form: &'static str,
    /// What the store is, in a few words.
    pub about: &'static str,
    /// The feature of this crate that brings it (empty for the built-in memory store).
    pub feature: &'static str,
    /// Whether this build has it.
    pub enabled: bool,
    pub(crate) backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Memory,
    Sled,
    Kubo,
    Gateway,
    S3,
    Embedded,
}

const MEMORY: &str = "mem";

#[cfg(feature = "sled")]
const SLED: &[&str] = &[hamt_store_sled::SCHEME];
#[cfg(not(feature = "sled"))]
const SLED: &[&str] = &["sled"];

#[cfg(feature = "kubo")]
const KUBO: &[&str] = &[hamt_store_kubo::SCHEME, hamt_store_kubo::SCHEME_HTTPS];
#[cfg(not(feature = "kubo"))]
const KUBO: &[&str] = &["kubo+http", "kubo+https"];

#[cfg(feature = "gateway")]
const GATEWAY: &[&str] = &[
    hamt_store_kubo::GATEWAY_SCHEME,
    hamt_store_kubo::GATEWAY_SCHEME_HTTPS,
];
#[cfg(not(feature = "gateway"))]
const GATEWAY: &[&str] = &["ipfs+http", "ipfs+https"];

#[cfg(feature = "s3")]
const S3: &[&str] = &[hamt_store_s3::SCHEME];
#[cfg(not(feature = "s3"))]
const S3: &[&str] = &["s3"];

#[cfg(feature = "embedded")]
const EMBEDDED: &[&str] = &[hamt_store_embedded::SCHEME];
#[cfg(not(feature = "embedded"))]
const EMBEDDED: &[&str] = &["ipfs-embedded"];

static SCHEMES: &[Scheme] = &[
    Scheme {
        names: &[MEMORY, "memory"],
        form: "mem:",
        about: "blocks in this process's memory, gone when it exits",
        feature: "",
        enabled: true,
        backend: Backend::Memory,
    },
    Scheme {
        names: SLED,
        form: "sled:PATH[?cache=SIZE]",
        about: "a sled database on local disk; one process at a time",
        feature: "sled",
        enabled: cfg!(feature = "sled"),
        backend: Backend::Sled,
    },
    Scheme {
        names: KUBO,
        form: "kubo+http://HOST:PORT[?gateway=URL]",
        about: "a Kubo (IPFS) node's RPC API, read through its gateways; pins",
        feature: "kubo",
        enabled: cfg!(feature = "kubo"),
        backend: Backend::Kubo,
    },
    Scheme {
        names: GATEWAY,
        form: "ipfs+http://HOST:PORT[?gateway=URL] | ipfs+https://HOST",
        about: "trustless HTTP gateways, read-only: every block verified, subtrees as CARs",
        feature: "gateway",
        enabled: cfg!(feature = "gateway"),
        backend: Backend::Gateway,
    },
    Scheme {
        names: S3,
        form: "s3://BUCKET/PREFIX[?endpoint=URL]",
        about: "S3 or any S3-compatible service: blocks packed into CAR objects",
        feature: "s3",
        enabled: cfg!(feature = "s3"),
        backend: Backend::S3,
    },
    Scheme {
        names: EMBEDDED,
        form: "ipfs-embedded:PATH | ipfs-embedded:mem",
        about: "an IPFS node inside this process, offline unless given peers; pins",
        feature: "embedded",
        enabled: cfg!(feature = "embedded"),
        backend: Backend::Embedded,
    },
];

/// Every scheme the registry knows, those this build has and those it lacks.
pub fn schemes() -> &'static [Scheme] {
    SCHEMES
}

/// The URL forms this build opens, comma-separated, for help texts and errors.
pub fn usage() -> String {
    SCHEMES
        .iter()
        .filter(|s| s.enabled)
        .map(|s| s.form)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The URL of the default store: a sled database in the user's data directory, so that
/// everything works with no daemon.
///
/// # Errors
/// [`Error::NoDefault`] in a build without sled, or when the user has no data directory.
pub fn default_url() -> Result<String, Error> {
    #[cfg(feature = "sled")]
    {
        let dir = dirs::data_dir().ok_or_else(|| Error::NoDefault {
            reason: "the user has no data directory (set HOME, or name a store)".into(),
        })?;
        Ok(format!(
            "{}:{}",
            hamt_store_sled::SCHEME,
            dir.join("hamt").join("blocks").display()
        ))
    }
    #[cfg(not(feature = "sled"))]
    Err(Error::NoDefault {
        reason: "this build has no sled store: name one (mem: keeps blocks in memory)".into(),
    })
}

/// Opens the store `url` names, through the backend its scheme belongs to.
///
/// # Errors
/// [`Error::UnknownScheme`], [`Error::NotEnabled`], or the backend's reason as
/// [`Error::Open`].
pub async fn open(url: &str) -> Result<OpenStore, Error> {
    let scheme = scheme_of(url)?;
    let name = scheme.names[0];
    let failed = |source: hamt::Error| Error::Open {
        scheme: name,
        source,
    };
    match scheme.backend {
        Backend::Memory => {
            let rest = url.split_once(':').map_or("", |(_, r)| r);
            if !rest.is_empty() {
                return Err(failed(hamt::Error::InvalidConfig(format!(
                    "{url:?}: a memory store takes no path or options (mem:)"
                ))));
            }
            Ok(OpenStore::new(name, Arc::new(MemoryStore::new())))
        }
        #[cfg(feature = "sled")]
        Backend::Sled => open_sled(name, url).map_err(failed),
        #[cfg(feature = "kubo")]
        Backend::Kubo => open_kubo(name, url).map_err(failed),
        #[cfg(feature = "gateway")]
        Backend::Gateway => open_gateway(name, url).map_err(failed),
        #[cfg(feature = "s3")]
        Backend::S3 => open_s3(name, url).map_err(failed),
        #[cfg(feature = "embedded")]
        Backend::Embedded => open_embedded(name, url).await.map_err(failed),
        // The arms above are the enabled backends; the rest are known but not built in.
        #[allow(unreachable_patterns)]
        _ => Err(Error::NotEnabled {
            scheme: name,
            feature: scheme.feature,
        }),
    }
}

/// The scheme whose name starts `url` (before the first `:`), compared without case.
pub(crate) fn scheme_of(url: &str) -> Result<&'static Scheme, Error> {
    let unknown = || Error::UnknownScheme {
        url: url.to_owned(),
        expected: usage(),
    };
    let (name, _) = url.split_once(':').ok_or_else(unknown)?;
    SCHEMES
        .iter()
        .find(|s| s.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .ok_or_else(unknown)
}

#[cfg(feature = "sled")]
fn open_sled(name: &'static str, url: &str) -> hamt::Result<OpenStore> {
    let store = Arc::new(hamt_store_sled::SledStore::from_url(url)?);
    let path = store.path().to_path_buf();
    Ok(OpenStore::new(name, store.clone())
        .with_local_path(path)
        .with_concrete(store))
}

#[cfg(feature = "kubo")]
fn open_kubo(name: &'static str, url: &str) -> hamt::Result<OpenStore> {
    let store = hamt_store_kubo::KuboStore::from_url(url)?;
    Ok(OpenStore::new(name, Arc::new(store)))
}

#[cfg(feature = "gateway")]
fn open_gateway(name: &'static str, url: &str) -> hamt::Result<OpenStore> {
    let store = hamt_store_kubo::GatewayStore::from_url(url)?;
    Ok(OpenStore::new(name, Arc::new(store)))
}

#[cfg(feature = "s3")]
fn open_s3(name: &'static str, url: &str) -> hamt::Result<OpenStore> {
    let store = Arc::new(hamt_store_s3::S3Store::from_url(url)?);
    Ok(OpenStore::new(name, store.clone()).with_concrete(store))
}

#[cfg(feature = "embedded")]
async fn open_embedded(name: &'static str, url: &str) -> hamt::Result<OpenStore> {
    let node = hamt_store_embedded::EmbeddedStore::from_url(url).await?;
    let handle = node.clone();
    let path = node.path().map(Path::to_path_buf);
    let mut opened = OpenStore::new(name, Arc::new(node)).with_closer(Box::new(move || {
        Box::pin(async move { Ok(handle.shutdown().await?) })
    }));
    if let Some(path) = path {
        opened = opened.with_local_path(path);
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_name_belongs_to_one_entry() {
        let mut names: Vec<String> = SCHEMES
            .iter()
            .flat_map(|s| s.names.iter().map(|n| n.to_ascii_lowercase()))
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a scheme name is listed twice");
    }

    #[test]
    fn urls_find_their_scheme_whatever_the_case() {
        assert_eq!(scheme_of("mem:").unwrap().form, "mem:");
        assert_eq!(scheme_of("MEMORY:").unwrap().form, "mem:");
        assert_eq!(
            scheme_of("sled:/tmp/x").unwrap().form,
            "sled:PATH[?cache=SIZE]"
        );
        assert_eq!(scheme_of("Kubo+HTTPS://h").unwrap().feature, "kubo");
        assert_eq!(scheme_of("s3://b/p").unwrap().feature, "s3");
        assert_eq!(scheme_of("IPFS+https://h").unwrap().feature, "gateway");
        assert_eq!(scheme_of("ipfs+http://h:8080").unwrap().feature, "gateway");
        assert_eq!(scheme_of("ipfs-embedded:mem").unwrap().feature, "embedded");
        for bad in ["", "sled", "/tmp/db", "http://host", "ftp:x"] {
            assert!(
                matches!(scheme_of(bad), Err(Error::UnknownScheme { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn usage_lists_exactly_the_enabled_forms() {
        let usage = usage();
        for scheme in SCHEMES {
            assert_eq!(
                usage.contains(scheme.form),
                scheme.enabled,
                "{}",
                scheme.form
            );
        }
    }
}
