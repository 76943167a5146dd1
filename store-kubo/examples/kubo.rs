//! Writes a small HAMT to a Kubo node, pins it, and reads it back through the gateway.
//!
//! `cargo run -p hamt-store-kubo --example kubo -- [kubo+http://127.0.0.1:5001?gateway=http://127.0.0.1:8080]`

use std::sync::Arc;

use hamt::{BlockStore, Hamt, HamtReader, Pinning as _};
use hamt_store_kubo::KuboStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "kubo+http://127.0.0.1:5001?gateway=http://127.0.0.1:8080".into());
    let kubo = KuboStore::from_url(&url)?;
    let store: Arc<dyn BlockStore> = Arc::new(kubo.clone());
    let mut map = Hamt::new(store.clone());
    for i in 0..100 {
        map.insert(&format!("station/{i}"), format!("reading {i}").into_bytes())
            .await?;
    }
    let root = map.flush().await?;
    kubo.pin(&root).await?;
    println!("root {root} pinned");
    let reader = HamtReader::open(store, root).await?;
    println!("station/42 = {:?}", reader.get("station/42").await?);
    Ok(())
}
