//! Subtree fetches (a gateway's CAR streams) through a store handle that Python can close.
//!
//! [`SubtreeFetch`] hands out streams that borrow the backend; the handle keeps its backend
//! behind a lock so that `close()` can let go of it, and cannot lend it out. So each stream
//! is produced by a task that holds the backend for as long as the stream runs and passes the
//! blocks on through a small channel: a reader that stops reading stops the task.

use std::sync::Arc;

use futures::StreamExt as _;
use hamt::{Block, BlockStore, BlockStream, Cid, SubtreeFetch};

use crate::guarded::Guarded;

/// Blocks waiting between the task and the reader.
const QUEUE: usize = 16;

/// Which stream of the backend's [`SubtreeFetch`] to run.
enum Request {
    Subtree { root: Cid, dups: bool },
    Path { root: Cid, key: String },
}

impl SubtreeFetch for Guarded {
    fn subtree(&self, root: Cid, dups: bool) -> BlockStream<'_> {
        forward(self, self.inner(), Request::Subtree { root, dups })
    }

    fn path(&self, root: Cid, key: &str) -> Option<BlockStream<'_>> {
        let inner = self.inner().ok()?;
        // Asked here only to learn whether the backend can; the task asks again.
        drop(inner.subtree_fetch()?.path(root, key)?);
        let key = key.to_owned();
        Some(forward(self, Ok(inner), Request::Path { root, key }))
    }
}

/// The stream `request` names, run by a task on the extension's runtime.
fn forward(
    guard: &Guarded,
    inner: hamt::Result<Arc<dyn BlockStore>>,
    request: Request,
) -> BlockStream<'static> {
    let inner = match inner {
        Ok(inner) => inner,
        Err(e) => return futures::stream::once(std::future::ready(Err(e))).boxed(),
    };
    // Only if the backend lost a capability its flags promised.
    let unsupported = guard.unsupported("subtree fetch");
    let (tx, rx) = tokio::sync::mpsc::channel::<hamt::Result<Block>>(QUEUE);
    crate::runtime::runtime().spawn(async move {
        let Some(fetch) = inner.subtree_fetch() else {
            let _ = tx.send(Err(unsupported)).await;
            return;
        };
        let stream = match &request {
            Request::Subtree { root, dups } => Some(fetch.subtree(*root, *dups)),
            Request::Path { root, key } => fetch.path(*root, key),
        };
        let Some(mut stream) = stream else {
            let _ = tx.send(Err(unsupported)).await;
            return;
        };
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    })
    .boxed()
}
