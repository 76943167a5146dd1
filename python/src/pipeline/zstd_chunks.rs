//! Chunks whose only codecs are `bytes` in this machine's byte order and `zstd` (zarr-python's
//! default for Zarr v3), encoded and decoded here instead of through zarrs' codec chain.
//!
//! zarrs makes and sets up a new zstd context for every chunk: about 100 KiB to decompress,
//! and several hundred KiB of tables to compress at level 3, allocated and cleared each time.
//! On the runtime's threads that was a tenth of a read's time. Each thread here keeps one
//! context of each kind. The frames are ordinary zstd frames made with the codec's level and
//! checksum setting, byte for byte the ones zarrs (and zarr-python) write, so chunk blocks
//! and root CIDs do not change; a frame that decompresses to any other length than the
//! chunk's is an error, as it is in zarrs.

use std::cell::RefCell;

use zarrs::array::ArrayMetadata;

thread_local! {
    /// This thread's decompression context, made on its first chunk.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    /// This thread's compression context and the settings it was last set to.
    static COMPRESSOR: RefCell<Option<(PlainZstd, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// The `zstd` codec's settings in an array whose codecs are exactly `bytes` then `zstd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PlainZstd {
    /// The compression level (0: zstd's default).
    level: i32,
    /// Whether frames carry a checksum.
    checksum: bool,
}

/// The `zstd` settings when the array's codecs are exactly `bytes` (in native byte order, or
/// without one for elements of `element_size` 1) followed by `zstd` in its version 1
/// configuration (`level`, `checksum`); None for any other chain, which zarrs codes.
pub(super) fn plain_zstd(metadata: &ArrayMetadata, element_size: usize) -> Option<PlainZstd> {
    let ArrayMetadata::V3(metadata) = metadata else {
        return None;
    };
    let [bytes, zstd] = metadata.codecs.as_slice() else {
        return None;
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
    if bytes.name() != "bytes" || !order_fits || zstd.name() != "zstd" {
        return None;
    }
    let config = zstd.configuration()?;
    let level = config.get("level")?.as_i64()?;
    let checksum = config.get("checksum")?.as_bool()?;
    (config.len() == 2).then_some(PlainZstd {
        level: i32::try_from(level).ok()?,
        checksum,
    })
}

/// `data` compressed into one zstd frame with `settings`, on this thread's context.
///
/// # Errors
/// zstd refuses the settings (a level out of its range) or fails to compress.
pub(super) fn encode(data: &[u8], settings: PlainZstd) -> Result<Vec<u8>, String> {
    let zstd_error = |e: std::io::Error| format!("zstd: {e}");
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some((set, compressor)) if *set == settings => compressor,
            other => {
                let mut compressor =
                    zstd::bulk::Compressor::new(settings.level).map_err(zstd_error)?;
                compressor
                    .include_checksum(settings.checksum)
                    .map_err(zstd_error)?;
                &mut other.insert((settings, compressor)).1
            }
        };
        compressor.compress(data).map_err(zstd_error)
    })
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
            plain_zstd(&metadata(&format!("[{little}, {zstd}]")), 4).is_some(),
            native_is_little
        );
        assert_eq!(
            plain_zstd(&metadata(&format!("[{big}, {zstd}]")), 4).is_some(),
            !native_is_little
        );
        assert!(plain_zstd(&metadata(&format!("[{bare}, {zstd}]")), 1).is_some());
        assert!(plain_zstd(&metadata(&format!("[{bare}, {zstd}]")), 4).is_none());
        assert!(plain_zstd(&metadata(&format!("[{little}]")), 4).is_none());
        assert!(plain_zstd(&metadata(&format!("[{little}, {gzip}]")), 4).is_none());
        assert!(plain_zstd(&metadata(&format!("[{little}, {zstd}, {crc}]")), 4).is_none());
        let transpose = r#"{"name": "transpose", "configuration": {"order": [0]}}"#;
        assert!(plain_zstd(&metadata(&format!("[{transpose}, {little}, {zstd}]")), 4).is_none());
    }

    #[test]
    fn the_codecs_level_and_checksum_are_its_settings() {
        let little = r#"{"name": "bytes", "configuration": {"endian": "little"}}"#;
        let chain = |zstd: &str| metadata(&format!("[{little}, {zstd}]"));
        let zstd = |config: &str| format!(r#"{{"name": "zstd", "configuration": {config}}}"#);
        if cfg!(target_endian = "little") {
            assert_eq!(
                plain_zstd(&chain(&zstd(r#"{"level": 5, "checksum": true}"#)), 4),
                Some(PlainZstd {
                    level: 5,
                    checksum: true
                })
            );
            assert_eq!(
                plain_zstd(&chain(&zstd(r#"{"level": -3, "checksum": false}"#)), 4),
                Some(PlainZstd {
                    level: -3,
                    checksum: false
                })
            );
        }
        // numcodecs' older form, or settings this module does not know: zarrs codes those.
        for config in [
            r#"{"level": 5}"#,
            r#"{"level": 5, "checksum": false, "threads": 2}"#,
            r#"{"level": 4294967296, "checksum": false}"#,
        ] {
            let doc = format!(
                r#"{{"zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "float32",
                    "chunk_grid": {{"name": "regular", "configuration": {{"chunk_shape": [2]}}}},
                    "chunk_key_encoding": {{"name": "default"}}, "fill_value": 0.0,
                    "codecs": [{little}, {}]}}"#,
                zstd(config)
            );
            if let Ok(metadata) = serde_json::from_str::<ArrayMetadata>(&doc) {
                assert_eq!(plain_zstd(&metadata, 4), None, "{config}");
            }
        }
    }

    #[test]
    fn frames_are_byte_for_byte_the_ones_a_fresh_context_makes() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let fresh = |level: i32, checksum: bool, data: &[u8]| {
            let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
            compressor.include_checksum(checksum).unwrap();
            compressor.compress(data).unwrap()
        };
        // Each twice, with the settings switching: the context is reused or set up again.
        for (level, checksum) in [(3, false), (3, false), (1, true), (3, false), (0, true)] {
            let settings = PlainZstd { level, checksum };
            for part in [&data[..], &data[..1000], &[][..]] {
                let frame = encode(part, settings).unwrap();
                assert_eq!(frame, fresh(level, checksum, part), "{settings:?}");
                assert_eq!(decode(&frame, part.len()).unwrap(), part);
            }
        }
        // A level past zstd's range is clamped, by either.
        let too_high = PlainZstd {
            level: 1000,
            checksum: false,
        };
        let part = &data[..1000];
        assert_eq!(encode(part, too_high).unwrap(), fresh(1000, false, part));
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
