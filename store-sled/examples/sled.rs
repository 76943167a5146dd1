//! Writes a HAMT into a sled database, closes it, reopens it and reads the keys back.
//!
//! `cargo run -p hamt-store-sled --example sled [DIR]`

use std::sync::Arc;

use futures::TryStreamExt as _;
use hamt::{Hamt, HamtReader};
use hamt_store_sled::SledStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join("hamt-sled-example"),
    };
    let root = {
        let store = Arc::new(SledStore::open(&dir)?);
        let mut map = Hamt::new(store.clone());
        map.extend((0..1000).map(|i| (format!("key-{i}"), format!("value {i}").into_bytes())))
            .await?;
        let root = map.flush().await?;
        store.flush().await?;
        root
    };
    println!("root {root} written to {}", dir.display());

    let store = Arc::new(SledStore::open(&dir)?);
    let reader = HamtReader::open(store, root).await?;
    let keys: Vec<String> = reader.keys().try_collect().await?;
    println!(
        "{} keys; key-7 = {:?}",
        keys.len(),
        reader.get("key-7").await?
    );
    Ok(())
}
