//! The CAR v1 reader: every block it returns matches its CID and sits in the archive at the
//! offset it reports, and writing the roots and blocks it read gives an archive that reads
//! back the same.

use futures::io::Cursor;
use hamt::car::{CarReader, CarWriter};
use hamt::{Bytes, Cid};

/// Blocks read from one input at most: enough for any archive a fuzz input can hold.
const MAX_BLOCKS: usize = 4096;

/// One input: the bytes of an archive.
pub fn run(data: &[u8]) {
    futures::executor::block_on(check(data));
}

async fn check(data: &[u8]) {
    let Ok(mut reader) = CarReader::new(Cursor::new(data)).await else {
        return;
    };
    let roots = reader.roots().to_vec();
    let mut blocks: Vec<(Cid, Bytes)> = Vec::new();
    while blocks.len() < MAX_BLOCKS {
        match reader.next_block_at().await {
            Ok(Some((cid, bytes, offset))) => {
                hamt::verify(&cid, &bytes).expect("the reader returns verified blocks");
                let at = usize::try_from(offset).expect("an offset inside the input");
                assert_eq!(
                    data.get(at..at + bytes.len()),
                    Some(&bytes[..]),
                    "block {cid} is not at the offset the reader reports"
                );
                blocks.push((cid, bytes));
            }
            Ok(None) | Err(_) => break,
        }
    }
    let mut writer = CarWriter::new(Cursor::new(Vec::new()), roots.clone())
        .await
        .expect("writing to memory cannot fail");
    for (cid, bytes) in &blocks {
        writer
            .write(cid, bytes)
            .await
            .expect("writing to memory cannot fail");
    }
    let written = writer
        .finish()
        .await
        .expect("writing to memory cannot fail")
        .into_inner();
    let mut again = CarReader::new(Cursor::new(&written[..]))
        .await
        .expect("an archive this crate wrote reads back");
    assert_eq!(
        again.roots(),
        &roots[..],
        "the roots changed in a round trip"
    );
    for (cid, bytes) in &blocks {
        let (c, b) = again
            .next_block()
            .await
            .expect("an archive this crate wrote reads back")
            .expect("every block written is read back");
        assert_eq!((&c, &b), (cid, bytes), "a block changed in a round trip");
    }
    assert!(
        again
            .next_block()
            .await
            .expect("reads to its end")
            .is_none(),
        "a round trip added a block"
    );
}
