//! The `hamt` binary end to end, on a real sled database in a temporary directory.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{Served, fails, files_under, ok, sample};

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Self { _dir: dir, root }
    }

    fn store(&self, name: &str) -> String {
        format!("sled:{}", self.root.join(name).display())
    }
}

#[test]
fn import_read_modify_export_round_trip() {
    let env = Env::new();
    let store = env.store("db");
    let root = ok(&store, &["import", sample().to_str().unwrap()])
        .trim()
        .to_owned();
    assert!(root.starts_with("bafyr4i"), "{root}");

    // The same import again gives the same root (content addressing, canonical shape).
    let again = ok(&store, &["import", sample().to_str().unwrap()]);
    assert_eq!(again.trim(), root);

    let expected = files_under(&sample());
    let ls = ok(&store, &["ls", &root]);
    let keys: Vec<&str> = ls.lines().collect();
    assert_eq!(
        keys,
        expected.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
    );
    assert!(keys.contains(&"temperature/berlin.csv"));

    let got = ok(&store, &["get", &root, "temperature/berlin.csv"]);
    assert_eq!(
        got.as_bytes(),
        std::fs::read(sample().join("temperature/berlin.csv")).unwrap()
    );

    let root2 = ok(&store, &["put", &root, "new/key.txt", "hello"])
        .trim()
        .to_owned();
    assert_ne!(root2, root);
    assert_eq!(ok(&store, &["get", &root2, "new/key.txt"]), "hello");
    let diff = ok(&store, &["diff", &root, &root2]);
    assert_eq!(diff.trim(), "+ new/key.txt");
    let root3 = ok(&store, &["rm", &root2, "new/key.txt"]).trim().to_owned();
    assert_eq!(
        root3, root,
        "removing the added key gives the original root back"
    );

    let out = env.root.join("exported");
    ok(&store, &["export", &root, out.to_str().unwrap()]);
    assert_eq!(files_under(&out), expected);

    let stat = ok(&store, &["--json", "stat", &root]);
    let stat: serde_json::Value = serde_json::from_str(&stat).unwrap();
    assert_eq!(stat["keys"], expected.len());
    let value_bytes: usize = expected.iter().map(|(_, v)| v.len()).sum();
    assert_eq!(stat["value_bytes"], value_bytes);
    assert_eq!(stat["depth"], 1);
}

#[test]
fn car_export_import_into_an_empty_store() {
    let env = Env::new();
    let a = env.store("a");
    let root = ok(&a, &["import", sample().to_str().unwrap()])
        .trim()
        .to_owned();
    let car = env.root.join("out.car");
    ok(&a, &["export-car", &root, car.to_str().unwrap()]);

    let b = env.store("b");
    fails(&b, &["ls", &root], 3, "not found");
    let roots = ok(&b, &["import-car", car.to_str().unwrap()]);
    assert_eq!(roots.trim(), root);
    for (key, value) in files_under(&sample()) {
        assert_eq!(ok(&b, &["get", &root, &key]).as_bytes(), &value[..]);
    }

    // A damaged CAR is refused.
    let mut bytes = std::fs::read(&car).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let bad = env.root.join("bad.car");
    std::fs::write(&bad, bytes).unwrap();
    fails(
        &env.store("c"),
        &["import-car", bad.to_str().unwrap()],
        1,
        "corrupt",
    );
}

#[test]
fn cbor_values_print_as_json() {
    let env = Env::new();
    let store = env.store("db");
    let root = ok(&store, &["new"]).trim().to_owned();
    // 0xa2 {"a": 1, "b": [true, null]}
    let value = env.root.join("v.cbor");
    std::fs::write(
        &value,
        [0xa2, 0x61, b'a', 0x01, 0x61, b'b', 0x82, 0xf5, 0xf6],
    )
    .unwrap();
    let root = ok(
        &store,
        &["put", &root, "k", "--file", value.to_str().unwrap()],
    )
    .trim()
    .to_owned();
    let json = ok(&store, &["get", &root, "k", "--cbor-json"]);
    assert_eq!(json.trim(), r#"{"a":1,"b":[true,null]}"#);
}

#[test]
fn bad_input_gets_clear_errors_and_exit_codes() {
    let env = Env::new();
    let store = env.store("db");
    let root = ok(&store, &["import", sample().to_str().unwrap()])
        .trim()
        .to_owned();
    fails(&store, &["get", "not-a-cid", "k"], 1, "invalid CID");
    fails(&store, &["get", &root, "no/such/key"], 3, "not found");
    fails(&store, &["rm", &root, "no/such/key"], 3, "not found");
    let missing = "bafyr4iaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    fails(&store, &["ls", missing], 3, "not found");
    fails(
        &store,
        &["import", "/definitely/not/here"],
        1,
        "/definitely/not/here",
    );
    fails(
        &store,
        &["import-car", "/definitely/not/here.car"],
        1,
        "here.car",
    );
    fails("ftp://x", &["ls", &root], 1, "unknown store URL");
    // Usage errors are clap's exit code 2.
    fails(&store, &["get"], 2, "");
    // A file that is not a CAR.
    let junk = env.root.join("junk.car");
    std::fs::write(&junk, b"hello world").unwrap();
    fails(&store, &["import-car", junk.to_str().unwrap()], 1, "CAR");
}

#[test]
fn a_locked_database_is_reported() {
    let env = Env::new();
    let store = env.store("db");
    let _held = hamt_store_sled::SledStore::open(env.root.join("db")).unwrap();
    fails(&store, &["new"], 1, "locked");
}

#[test]
fn export_refuses_keys_that_escape_the_directory() {
    let env = Env::new();
    let store = env.store("db");
    let root = ok(&store, &["new"]).trim().to_owned();
    let root = ok(&store, &["put", &root, "../escape", "x"])
        .trim()
        .to_owned();
    let out = env.root.join("out");
    fails(
        &store,
        &["export", &root, out.to_str().unwrap()],
        1,
        "cannot be exported",
    );
    assert!(!env.root.join("escape").exists());
}

#[test]
fn mem_store_and_json_output() {
    let env = Env::new();
    let out = ok("mem:", &["--json", "import", sample().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["keys"], files_under(&sample()).len());
    // The same files give the same root in any store.
    let sled_root = ok(&env.store("db"), &["import", sample().to_str().unwrap()]);
    assert_eq!(v["root"], sled_root.trim());
}

/// An HTTP/1.0 GET on loopback: the body is delimited by the connection's end.
///
/// A server may answer a request it refuses (a huge path) before it has read all of it, and
/// close: the write cut short is part of that exchange, and the answer is what counts.
fn http_get(addr: &str, path: &str) -> (String, Vec<u8>) {
    use std::io::{ErrorKind, Read as _, Write as _};
    let cut =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    if let Err(e) = write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n") {
        assert!(cut(&e), "{e}");
    }
    let mut response = Vec::new();
    if let Err(e) = stream.read_to_end(&mut response) {
        assert!(cut(&e) && !response.is_empty(), "{e}");
    }
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    (head, response[split + 4..].to_vec())
}

#[test]
fn serve_a_car_that_imports_into_an_empty_store_and_stop_on_sigterm() {
    let env = Env::new();
    let a = env.store("a");
    let root = ok(&a, &["import", sample().to_str().unwrap()])
        .trim()
        .to_owned();
    let mut server = Served::start(&a);
    let addr = server.addr.to_string();
    let (head, car) = http_get(&addr, &format!("/ipfs/{root}?format=car"));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let (head, _) = http_get(&addr, "/ipfs/not-a-cid");
    assert!(head.contains(" 400 "), "{head}");
    // A huge path is refused by the HTTP layer with a 4xx, and the server carries on.
    let (head, _) = http_get(&addr, &format!("/ipfs/{}", "b".repeat(200_000)));
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!((400..500).contains(&status), "{head}");

    let file = env.root.join("served.car");
    std::fs::write(&file, car).unwrap();
    let b = env.store("b");
    assert_eq!(ok(&b, &["import-car", file.to_str().unwrap()]).trim(), root);
    for (key, value) in files_under(&sample()) {
        assert_eq!(ok(&b, &["get", &root, &key]).as_bytes(), &value[..]);
    }

    // A reader with only the gateway's URL: `ls`, `get` and `export` over `ipfs+http://`.
    let gateway = format!("ipfs+http://{addr}");
    let expected = files_under(&sample());
    assert_eq!(
        ok(&gateway, &["ls", &root]).lines().collect::<Vec<_>>(),
        expected.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(
        ok(&gateway, &["get", &root, "temperature/berlin.csv"]).as_bytes(),
        std::fs::read(sample().join("temperature/berlin.csv")).unwrap()
    );
    let out = env.root.join("via-gateway");
    ok(&gateway, &["export", &root, out.to_str().unwrap()]);
    assert_eq!(files_under(&out), expected);
    // The gateway store is read-only: a write is an error.
    fails(&gateway, &["put", &root, "k", "v"], 1, "read-only");

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(
        exit.success(),
        "hamt serve did not stop cleanly on SIGTERM: {exit}"
    );
}

#[test]
fn kubo_store_import_read_and_pin() {
    let rpc = hamt_test_support::required_env("HAMT_TEST_KUBO_RPC");
    let host = rpc.trim_start_matches("http://").trim_end_matches('/');
    let store = format!("kubo+http://{host}?read=rpc&missing-block-timeout=500");
    let root = ok(&store, &["import", sample().to_str().unwrap()])
        .trim()
        .to_owned();
    // The same root as in any other store.
    let env = Env::new();
    assert_eq!(
        ok(&env.store("db"), &["import", sample().to_str().unwrap()]).trim(),
        root
    );
    assert_eq!(
        ok(&store, &["get", &root, "temperature/berlin.csv"]).as_bytes(),
        std::fs::read(sample().join("temperature/berlin.csv")).unwrap()
    );
    assert_eq!(ok(&store, &["pin", &root]).trim(), format!("pinned {root}"));
    assert_eq!(
        ok(&store, &["pin", "--rm", &root]).trim(),
        format!("unpinned {root}")
    );
    fails(&env.store("db2"), &["pin", &root], 1, "needs a Kubo store");
    let missing = "bafyr4iaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    fails(&store, &["ls", missing], 3, "not found");
}

/// A Zarr v3 directory written by xarray (real Python from PyPI, via `cargo xtask test`)
/// goes through `hamt zarr import`, `info` and `export`, and xarray finds the export
/// identical to the original.
#[test]
fn zarr_import_info_export_round_trip() {
    let env = Env::new();
    let store = env.store("db");
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zarr/tests/python/peer.py");
    let original = env.root.join("original.zarr");
    hamt_test_support::run_python_peer(&peer, &["write-dir", original.to_str().unwrap()], None);

    let root = ok(&store, &["zarr", "import", original.to_str().unwrap()]);
    let root = root.trim();
    let info = ok(&store, &["zarr", "info", root]);
    assert!(
        info.contains(
            "temp  array float32 (6, 10, 12) [time, lat, lon]  chunks (2, 5, 4)  18/18 stored"
        ),
        "{info}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&store, &["--json", "zarr", "info", root])).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 7);

    let exported = env.root.join("exported.zarr");
    ok(
        &store,
        &["zarr", "export", root, exported.to_str().unwrap()],
    );
    let same = hamt_test_support::run_python_peer(
        &peer,
        &[
            "compare-dirs",
            original.to_str().unwrap(),
            exported.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&same).trim(), "identical");

    // Converted to py-hamt's sharded layout, reusing every chunk block.
    let sharded = ok(&store, &["zarr", "shard", root, "--chunks-per-shard", "4"]);
    let info = ok(&store, &["zarr", "info", sharded.trim()]);
    assert!(info.starts_with("sharded (V2 manifest)"), "{info}");
    assert!(
        info.contains("temp  array (6, 10, 12)  chunks (2, 5, 4)  4 chunks per shard"),
        "{info}"
    );

    // The same dataset encrypted reads back only with its key.
    let key = env.root.join("key");
    std::fs::write(&key, "11".repeat(32)).unwrap();
    let sealed = ok(
        &store,
        &[
            "zarr",
            "import",
            original.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
    );
    let sealed = sealed.trim();
    assert_ne!(sealed, root);
    fails(
        &store,
        &["zarr", "info", sealed],
        1,
        "invalid Zarr metadata",
    );
    let info = ok(
        &store,
        &["zarr", "info", sealed, "--key-file", key.to_str().unwrap()],
    );
    assert!(info.contains("temp  array float32"), "{info}");
    std::fs::write(&key, "22".repeat(32)).unwrap();
    fails(
        &store,
        &["zarr", "info", sealed, "--key-file", key.to_str().unwrap()],
        1,
        "authentication failed",
    );
    fails(
        &store,
        &["zarr", "import", env.root.to_str().unwrap()],
        1,
        "not a Zarr v3 store",
    );
}

/// `--store s3://…` against the real S3 server `cargo xtask test` starts: import, read,
/// a CAR into another prefix as one pack, and `s3-check`.
#[cfg(feature = "s3")]
#[test]
fn s3_store_import_read_car_and_check() {
    let endpoint = hamt_test_support::required_env("HAMT_TEST_S3_ENDPOINT");
    let bucket = hamt_test_support::required_env("HAMT_TEST_S3_BUCKET");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let store = format!("s3://{bucket}/cli-{nanos}?endpoint={endpoint}&pack-size=64KiB");
    let root = ok(&store, &["import", sample().to_str().unwrap()]);
    let root = root.trim();
    let value = ok(&store, &["get", root, "temperature/berlin.csv"]);
    assert_eq!(
        value.as_bytes(),
        std::fs::read(sample().join("temperature/berlin.csv")).unwrap()
    );

    let env = Env::new();
    let car = env.root.join("map.car");
    ok(&store, &["export-car", root, car.to_str().unwrap()]);
    let other = format!("s3://{bucket}/cli-car-{nanos}?endpoint={endpoint}");
    let json: serde_json::Value = serde_json::from_str(&ok(
        &other,
        &["--json", "import-car", car.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(json["roots"][0].as_str().unwrap(), root);
    assert_eq!(ok(&other, &["ls", root]), ok(&store, &["ls", root]));
    let check: serde_json::Value =
        serde_json::from_str(&ok(&other, &["--json", "s3-check"])).unwrap();
    assert_eq!(check["objects"], 1);
    assert!(ok(&store, &["s3-check"]).contains("every index has its data"));
    fails("mem:", &["s3-check"], 1, "needs an S3 store");
}

/// `--store ipfs-embedded:PATH`: an IPFS node inside the `hamt` process, repo on disk.
#[cfg(feature = "embedded")]
#[test]
fn embedded_ipfs_store_import_read_pin_and_car() {
    let env = Env::new();
    let store = format!("ipfs-embedded:{}", env.root.join("ipfs").display());
    let root = ok(&store, &["import", sample().to_str().unwrap()]);
    let root = root.trim();
    let value = ok(&store, &["get", root, "temperature/berlin.csv"]);
    assert_eq!(
        value.as_bytes(),
        std::fs::read(sample().join("temperature/berlin.csv")).unwrap()
    );
    assert_eq!(ok(&store, &["pin", root]).trim(), format!("pinned {root}"));
    let car = env.root.join("map.car");
    ok(&store, &["export-car", root, car.to_str().unwrap()]);
    let sled = env.store("db");
    assert_eq!(
        ok(&sled, &["import-car", car.to_str().unwrap()]).trim(),
        root
    );
    assert_eq!(ok(&sled, &["ls", root]), ok(&store, &["ls", root]));
    fails(&sled, &["pin", root], 1, "pinning needs");
}
