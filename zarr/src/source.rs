//! [`Source`]: reading a dataset whatever its layout — its keys, and the value of each.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _, stream};

use crate::error::Result;

/// Values fetched at once for [`Source::prefix_size`].
const CONCURRENCY: usize = 32;

mod sealed {
    /// Only this crate's stores are [`Source`](super::Source)s.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
    impl Sealed for crate::HamtStore {}
    impl Sealed for crate::ShardedStore {}
    impl Sealed for crate::Dataset {}
    impl<T: Sealed + ?Sized> Sealed for std::sync::Arc<T> {}
}

/// A dataset to read: a [`HamtStore`](crate::HamtStore), a
/// [`ShardedStore`](crate::ShardedStore), a [`Dataset`](crate::Dataset) of either layout, or
/// an `Arc` of one. [`dataset_info`](crate::dataset_info) and
/// [`export_dir`](crate::export_dir) read any of them. The trait is sealed: the stores of
/// this crate implement it, nothing else can.
#[async_trait::async_trait]
pub trait Source: Send + Sync + sealed::Sealed {
    /// Every key starting with `prefix` (`""`: all), sorted, each once.
    ///
    /// # Errors
    /// Store failures.
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>>;

    /// The value of `key` as Zarr sees it (decrypted where that applies), `None` when the
    /// key is not there.
    ///
    /// # Errors
    /// Store failures, and whatever the store's own `get_value` documents.
    async fn get_value(&self, key: &str) -> Result<Option<Bytes>>;

    /// The total size of the values under `prefix`, a few fetched at once.
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value).
    async fn prefix_size(&self, prefix: &str) -> Result<u64> {
        prefix_size(self, prefix).await
    }

    /// Every key starting with `prefix` with its value as Zarr sees it, in no particular
    /// order: what a whole-dataset read (`export_dir`) streams. A HAMT read over a store
    /// that fetches subtrees (a gateway) takes the tree in one CAR stream; otherwise values
    /// are fetched a few at once.
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value), in the stream.
    fn values<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<(String, Bytes)>> {
        values_by_key(self, prefix)
    }
}

/// [`Source::values`] by listing, then fetching [`CONCURRENCY`] values at once.
pub(crate) fn values_by_key<'a, S: Source + ?Sized>(
    source: &'a S,
    prefix: &'a str,
) -> BoxStream<'a, Result<(String, Bytes)>> {
    stream::once(source.keys_with_prefix(prefix))
        .map_ok(move |keys| {
            stream::iter(keys)
                .map(move |key| async move {
                    Ok(source.get_value(&key).await?.map(|value| (key, value)))
                })
                .buffer_unordered(CONCURRENCY)
        })
        .try_flatten()
        .try_filter_map(|found| std::future::ready(Ok(found)))
        .boxed()
}

/// [`Source::prefix_size`]: every value under `prefix` fetched, [`CONCURRENCY`] at once.
pub(crate) async fn prefix_size<S: Source + ?Sized>(source: &S, prefix: &str) -> Result<u64> {
    let keys = source.keys_with_prefix(prefix).await?;
    stream::iter(keys)
        .map(|key| async move { source.get_value(&key).await })
        .buffer_unordered(CONCURRENCY)
        .try_fold(0, |sum, v| {
            std::future::ready(Ok(sum + v.map_or(0, |v| v.len() as u64)))
        })
        .await
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: Source + ?Sized> Source for Arc<T> {
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        (**self).keys_with_prefix(prefix).await
    }

    async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        (**self).get_value(key).await
    }

    async fn prefix_size(&self, prefix: &str) -> Result<u64> {
        (**self).prefix_size(prefix).await
    }

    fn values<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<(String, Bytes)>> {
        (**self).values(prefix)
    }
}
