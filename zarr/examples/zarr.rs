//! Writes a small float32 array with `zarrs` into a HAMT, flushes it to a root CID, then
//! reopens the dataset read-only by that CID and reads a region back.
//!
//! ```sh
//! cargo run -p hamt-zarr --example zarr
//! ```

use std::sync::Arc;

use hamt::MemoryStore;
use hamt_zarr::HamtStore;
use zarrs::array::{ArrayBuilder, data_type};
use zarrs::group::GroupBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Any `BlockStore` works here: sled on disk, Kubo, an embedded node, S3.
    let blocks = Arc::new(MemoryStore::new());
    let store = Arc::new(HamtStore::builder(blocks.clone()).build().await?);

    GroupBuilder::new()
        .build(store.clone(), "/")?
        .async_store_metadata()
        .await?;
    let array = ArrayBuilder::new(vec![8, 8], vec![4, 4], data_type::float32(), f32::NAN)
        .dimension_names(Some(["y", "x"]))
        .build_arc(store.clone(), "/temperature")?;
    array.async_store_metadata().await?;
    let values: Vec<f32> = (0..64u8).map(|i| f32::from(i) / 2.0).collect();
    array
        .async_store_array_subset(&array.subset_all(), &values[..])
        .await?;
    let root = store.flush().await?;
    println!("dataset root: {root}");

    let read = Arc::new(HamtStore::open(blocks, root).await?);
    let array = zarrs::array::Array::async_open(read.clone(), "/temperature").await?;
    let region: ndarray::ArrayD<f32> = array.async_retrieve_array_subset(&[2..6, 3..5]).await?;
    println!("temperature[2..6, 3..5] =\n{region}");
    print!("{}", hamt_zarr::dataset_info(&read).await?);
    Ok(())
}
