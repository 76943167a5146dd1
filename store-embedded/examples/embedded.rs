//! Publishes a small HAMT from an embedded IPFS node with a persistent repo, pins it, stops
//! the node, then starts it again and reads the map back: no daemon involved.
//!
//! ```sh
//! cargo run -p hamt-store-embedded --example embedded -- /tmp/hamt-ipfs-repo
//! ```

use std::sync::Arc;

use hamt::{Hamt, HamtReader, Pinning as _};
use hamt_store_embedded::EmbeddedStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = std::env::args().nth(1).ok_or("usage: embedded REPO_DIR")?;
    let url = format!("ipfs-embedded:{repo}");

    let node = EmbeddedStore::from_url(&url).await?;
    let mut map = Hamt::new(Arc::new(node.clone()));
    for city in ["berlin", "lagos", "lima", "osaka"] {
        map.insert(
            &format!("temperature/{city}"),
            format!("{city}: 21.5").into_bytes(),
        )
        .await?;
    }
    let root = map.flush().await?;
    node.pin(&root).await?;
    println!("published and pinned {root} as peer {}", node.peer_id());
    node.shutdown().await?;
    drop((map, node));

    let node = EmbeddedStore::from_url(&url).await?;
    let reader = HamtReader::open(Arc::new(node.clone()), root).await?;
    let value = reader.get("temperature/lima").await?.ok_or("key missing")?;
    println!("after a restart: {}", String::from_utf8_lossy(&value));
    node.shutdown().await?;
    Ok(())
}
