//! The versions side of each kind of store: where its refs live by default, which URLs can
//! hold refs, and which garbage collector deletes its blocks. Like the schemes table, this
//! is the one place that knows it.
//!
//! | store | refs by default | garbage collection |
//! |---|---|---|
//! | `mem:` | in this process's memory | — |
//! | `sled:PATH` | the `refs` table of the store's own database | blocks ([`SledSweep`]) |
//! | `s3://BUCKET/PREFIX` | objects under `PREFIX/refs/`, conditional puts | packs ([`S3Sweep`]) |
//! | `kubo+http://…`, `ipfs-embedded:…` | a sled database in the user's data directory, `hamt/refs/NAME` with NAME from the store URL | — (the node's own) |
//!
//! An explicit refs URL may be `mem:`, `sled:PATH` (the `refs` table of the sled database
//! at PATH, which may be the store itself) or `s3://BUCKET/PREFIX` (objects under
//! `PREFIX/refs/`).
//!
//! [`SledSweep`]: hamt_versions::SledSweep
//! [`S3Sweep`]: hamt_versions::S3Sweep

use std::sync::Arc;

use hamt_versions::{MemoryRefStore, RefStore, Sweep};

use crate::error::Error;
use crate::opened::OpenStore;
use crate::schemes::{Backend, scheme_of};

/// The ref store for the store `opened` (opened from `store_url`): the one `refs_url`
/// names, or the store's default (see the module table).
///
/// # Errors
/// [`Error::UnknownScheme`]; [`Error::Open`] for a URL that cannot hold refs or a ref
/// store that does not open (a sled database another process holds); [`Error::NoDefault`]
/// for an IPFS store without a data directory or sled in this build.
// Without sled and S3 only memory refs are left, which need none of the store's details.
#[cfg_attr(not(any(feature = "sled", feature = "s3")), allow(unused_variables))]
pub fn open_refs(
    opened: &OpenStore,
    store_url: &str,
    refs_url: Option<&str>,
) -> Result<Arc<dyn RefStore>, Error> {
    let url = refs_url.unwrap_or(store_url);
    let scheme = scheme_of(url)?;
    let name = scheme.names[0];
    let failed = |e: hamt_versions::Error| Error::Open {
        scheme: name,
        source: match e {
            hamt_versions::Error::Hamt(e) => e,
            e => hamt::Error::InvalidConfig(e.to_string()),
        },
    };
    let same_store = refs_url.is_none_or(|r| r == store_url);
    match scheme.backend {
        Backend::Memory => Ok(Arc::new(MemoryRefStore::new())),
        #[cfg(feature = "sled")]
        Backend::Sled => {
            let store = match opened.concrete::<hamt_store_sled::SledStore>() {
                Some(store) if same_store => store.clone(),
                _ => hamt_store_sled::SledStore::from_url(url).map_err(|e| Error::Open {
                    scheme: name,
                    source: e.into(),
                })?,
            };
            Ok(Arc::new(
                hamt_versions::SledRefStore::new(&store).map_err(failed)?,
            ))
        }
        #[cfg(feature = "s3")]
        Backend::S3 => {
            let store = match opened.concrete::<hamt_store_s3::S3Store>() {
                Some(store) if same_store => store.clone(),
                _ => hamt_store_s3::S3Store::from_url(url).map_err(|e| Error::Open {
                    scheme: name,
                    source: e.into(),
                })?,
            };
            Ok(Arc::new(hamt_versions::ObjectRefStore::for_store(&store)))
        }
        Backend::Kubo | Backend::Embedded if refs_url.is_none() => local_refs(store_url),
        #[allow(unreachable_patterns)]
        Backend::Sled | Backend::S3 if !scheme.enabled => Err(Error::NotEnabled {
            scheme: name,
            feature: scheme.feature,
        }),
        _ => Err(Error::Open {
            scheme: name,
            source: hamt::Error::InvalidConfig(format!(
                "{url:?} cannot hold refs: name a mem:, sled: or s3:// URL"
            )),
        }),
    }
}

/// Refs kept on this machine for a store that is elsewhere (an IPFS node).
fn local_refs(store_url: &str) -> Result<Arc<dyn RefStore>, Error> {
    #[cfg(feature = "sled")]
    {
        let dir = dirs::data_dir().ok_or_else(|| Error::NoDefault {
            reason: "the user has no data directory for the refs of this store (set HOME, \
                     or name a ref store)"
                .into(),
        })?;
        let path = dir.join("hamt").join("refs").join(refs_dir_name(store_url));
        let store = hamt_store_sled::SledStore::open(&path).map_err(|e| Error::Open {
            scheme: hamt_store_sled::SCHEME,
            source: e.into(),
        })?;
        hamt_versions::SledRefStore::new(&store)
            .map(|r| Arc::new(r) as Arc<dyn RefStore>)
            .map_err(|e| Error::Open {
                scheme: hamt_store_sled::SCHEME,
                source: hamt::Error::InvalidConfig(e.to_string()),
            })
    }
    #[cfg(not(feature = "sled"))]
    {
        let _ = store_url;
        Err(Error::NoDefault {
            reason: "refs of an IPFS store are kept in a local sled database, and this build \
                     has no sled: name a ref store"
                .into(),
        })
    }
}

/// A folder name for the refs of `url`: its letters and digits, readable, and a hash of
/// the whole URL, so that two URLs never share one.
#[cfg_attr(not(feature = "sled"), allow(dead_code))]
fn refs_dir_name(url: &str) -> String {
    let readable: String = url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(48)
        .collect();
    let digest = hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, url.as_bytes());
    let hex = digest.hash().digest()[..8]
        .iter()
        .fold(String::new(), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        });
    format!("{readable}-{hex}")
}

/// The garbage collector of the store `opened`, when its backend has one.
pub fn sweeper(opened: &OpenStore) -> Option<Result<Box<dyn Sweep>, Error>> {
    #[cfg(feature = "sled")]
    if let Some(store) = opened.concrete::<hamt_store_sled::SledStore>() {
        return Some(
            hamt_versions::SledSweep::new(store)
                .map(|s| Box::new(s) as Box<dyn Sweep>)
                .map_err(|e| Error::Open {
                    scheme: hamt_store_sled::SCHEME,
                    source: hamt::Error::InvalidConfig(e.to_string()),
                }),
        );
    }
    #[cfg(feature = "s3")]
    if let Some(store) = opened.concrete::<hamt_store_s3::S3Store>() {
        return Some(Ok(Box::new(hamt_versions::S3Sweep::new(store))));
    }
    let _ = opened;
    None
}

#[cfg(test)]
mod tests {
    use super::refs_dir_name;

    #[test]
    fn refs_folders_are_readable_and_never_shared() {
        let a = refs_dir_name("kubo+http://127.0.0.1:5001");
        assert!(a.starts_with("kubo_http___127_0_0_1_5001-"), "{a}");
        assert_ne!(a, refs_dir_name("kubo+http://127.0.0.1_5001"));
        assert_ne!(a, refs_dir_name("kubo+http://127.0.0.1:5002"));
    }
}
