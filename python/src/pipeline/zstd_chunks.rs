//! Chunks whose only codecs are `bytes` in this machine's byte order and `zstd` (zarr-python's
//! default for Zarr v3), decoded here instead of through zarrs' codec chain.
//!
//! zarrs makes and sets up a new zstd decompression context (about 100 KiB) for every chunk;
//! on the runtime's threads that was a tenth of a read's time. Each thread here keeps one.
//! The input is an ordinary zstd frame (its checksum checked when it has one), so the bytes
//! are the ones zarrs would give; a frame that decompresses to any other length than the
//! chunk's is an error, as it is in zarrs.

use std::cell::RefCell;

use zarrs::array::ArrayMetadata;

thread_local! {
    /// This thread's decompression context, made on its first chunk.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// True when the array's codecs are exactly `bytes` (in native byte order, or without one
/// for elements of `element_size` 1) followed by `zstd`.
pub(super) fn is_plain_zstd(metadata: &ArrayMetadata, element_size: usize) -> bool {
    let ArrayMetadata::V3(metadata) = metadata else {
        return false;
    };
    let [bytes, zstd] = metadata.codecs.as_slice() else {
        return false;
    };
    let native = if cfg!(target_endian = "little") {
        "little"
    } else {
        "big"
    };
    let order_fits = match bytes.configuration().and_then(|c| c.get("endian")) {
        Some(endian) => endian.as_str() == Some(native),
        None => element_size == 1,
    };
    bytes.name() == "bytes" && order_fits && zstd.name() == "zstd"
}

/// `encoded` (zstd frames) decompressed into exactly `len` bytes.
///
/// # Errors
/// The frame is damaged, fails its checksum, or holds more or fewer than `len` bytes.
pub(super) fn decode(encoded: &[u8], len: usize) -> Result<Vec<u8>, String> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match &mut *cell {
            Some(d) => d,
            None => cell.insert(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?),
        };
        // What the frames can hold (their declared sizes, or a bound from their blocks):
        // when that is less than the chunk, nothing is allocated, so a chunk shape that a
        // damaged or hostile `zarr.json` makes huge costs no memory.
        let bound = zstd::zstd_safe::decompress_bound(encoded)
            .map_err(|code| format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))?;
        if bound < len as u64 {
            return Err(format!(
                "zstd frames hold at most {bound} bytes, the chunk {len}"
            ));
        }
        let mut out = Vec::new();
        out.try_reserve_exact(len)
            .map_err(|e| format!("{len} bytes for the chunk: {e}"))?;
        // Writes at most `len` bytes: a frame that holds more fails here.
        let written = decompressor
            .decompress_to_buffer(encoded, &mut out)
            .map_err(|e| format!("zstd: {e}"))?;
        if written == len {
            Ok(out)
        } else {
            Err(format!("zstd frame holds {written} bytes, the chunk {len}"))
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn metadata(codecs: &str) -> ArrayMetadata {
        let doc = format!(
            r#"{{"zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "float32",
                "chunk_grid": {{"name": "regular", "configuration": {{"chunk_shape": [2]}}}},
                "chunk_key_encoding": {{"name": "default"}}, "fill_value": 0.0,
                "codecs": {codecs}}}"#
        );
        serde_json::from_str(&doc).unwrap()
    }

    #[test]
    fn only_bytes_then_zstd_in_native_order_is_plain() {
        let zstd = r#"{"name": "zstd", "configuration": {"level": 0, "checksum": false}}"#;
        let little = r#"{"name": "bytes", "configuration": {"endian": "little"}}"#;
        let big = r#"{"name": "bytes", "configuration": {"endian": "big"}}"#;
        let bare = r#"{"name": "bytes"}"#;
        let crc = r#"{"name": "crc32c"}"#;
        let gzip = r#"{"name": "gzip", "configuration": {"level": 1}}"#;
        let native_is_little = cfg!(target_endian = "little");
        assert_eq!(
            is_plain_zstd(&metadata(&format!("[{little}, {zstd}]")), 4),
            native_is_little
        );
        assert_eq!(
            is_plain_zstd(&metadata(&format!("[{big}, {zstd}]")), 4),
            !native_is_little
        );
        assert!(is_plain_zstd(&metadata(&format!("[{bare}, {zstd}]")), 1));
        assert!(!is_plain_zstd(&metadata(&format!("[{bare}, {zstd}]")), 4));
        assert!(!is_plain_zstd(&metadata(&format!("[{little}]")), 4));
        assert!(!is_plain_zstd(&metadata(&format!("[{little}, {gzip}]")), 4));
        assert!(!is_plain_zstd(
            &metadata(&format!("[{little}, {zstd}, {crc}]")),
            4
        ));
        let transpose = r#"{"name": "transpose", "configuration": {"order": [0]}}"#;
        assert!(!is_plain_zstd(
            &metadata(&format!("[{transpose}, {little}, {zstd}]")),
            4
        ));
    }

    #[test]
    fn frames_decode_to_exactly_the_chunks_length() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for checksum in [false, true] {
            let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
            compressor.include_checksum(checksum).unwrap();
            let frame = compressor.compress(&data).unwrap();
            // Twice on one thread: the second run reuses the context.
            assert_eq!(decode(&frame, data.len()).unwrap(), data);
            assert_eq!(decode(&frame, data.len()).unwrap(), data);
            assert!(
                decode(&frame, data.len() - 1).is_err(),
                "longer than the chunk"
            );
            assert!(
                decode(&frame, data.len() + 1).is_err(),
                "shorter than the chunk"
            );
            assert!(
                decode(&frame[..frame.len() / 2], data.len()).is_err(),
                "cut"
            );
        }
        let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
        compressor.include_checksum(true).unwrap();
        let mut frame = compressor.compress(&data).unwrap();
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert!(decode(&frame, data.len()).is_err(), "a failed checksum");
        // Concatenated frames are one value, as zstd (and zarrs) read them.
        let half = data.len() / 2;
        let mut two = zstd::bulk::compress(&data[..half], 1).unwrap();
        two.extend(zstd::bulk::compress(&data[half..], 1).unwrap());
        assert_eq!(decode(&two, data.len()).unwrap(), data);
        // Frames that do not declare their size (streamed) are bounded by their blocks.
        let streamed = zstd::stream::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(),
            None
        );
        assert_eq!(decode(&streamed, data.len()).unwrap(), data);
        // A chunk far larger than its frames can hold is refused before any allocation.
        assert!(decode(&two, usize::MAX / 2).is_err());
        assert!(decode(&streamed, 1 << 40).is_err());
        // After an error the context still works.
        assert_eq!(decode(&two, data.len()).unwrap(), data);
    }
}
