//! A node that stops and comes back during a long write: the write completes through
//! retries, and nothing flushed before is lost (`an_unreachable_node_is_a_temporary_error_after_retries`
//! in kubo.rs covers a node that does not come back). Starts its
//! own IPFS node from the launcher `cargo xtask test` installs (`HAMT_TEST_IPFS_NODE_DIR`).

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hamt::{BlockStore, Hamt, HamtReader};
use hamt_store_kubo::{KuboStore, KuboStoreBuilder, ReadFrom};

struct Node {
    child: Child,
}

impl Node {
    fn start(dir: &Path, repo: &Path, api: u16, gateway: u16) -> Self {
        let child = Command::new("node")
            .arg(dir.join("node.mjs"))
            .arg(repo)
            .arg(api.to_string())
            .arg(gateway.to_string())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_mins(1);
        while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
            assert!(Instant::now() < deadline, "IPFS node did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Node { child }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_during_a_long_write_loses_nothing_flushed() {
    let dir = PathBuf::from(hamt_test_support::required_env("HAMT_TEST_IPFS_NODE_DIR"));
    let repo = tempfile_dir();
    let (api, gateway) = (free_port(), free_port());
    let node = Node::start(&dir, &repo, api, gateway);
    let store: KuboStore = KuboStoreBuilder::new()
        .rpc_url(format!("http://127.0.0.1:{api}").parse().unwrap())
        .read_from(ReadFrom::Rpc)
        .missing_block_timeout(Duration::from_millis(500))
        .retries(8, Duration::from_millis(200))
        .build()
        .unwrap();
    let dyn_store: Arc<dyn BlockStore> = Arc::new(store.clone());

    // A first version, flushed before any trouble.
    let mut map = Hamt::new(dyn_store.clone());
    map.extend((0..300).map(|i| (format!("before/{i}"), format!("v{i}").into_bytes())))
        .await
        .unwrap();
    let first = map.flush().await.unwrap();

    // A long write while the node goes down and comes back.
    let writer = tokio::spawn(async move {
        for i in 0..1500 {
            map.insert(&format!("during/{i}"), format!("w{i}").into_bytes())
                .await?;
        }
        map.flush().await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let node = Node::start(&dir, &repo, api, gateway);
    // The retries (8, backoff from 200 ms doubling: over 50 s in all) outlast the restart
    // (a few seconds), so the write must complete.
    let second = writer.await.unwrap().unwrap_or_else(|e| {
        panic!(
            "the write should have outlasted the restart through retries (temporary: {}): {e}",
            e.is_temporary()
        )
    });
    let reader = HamtReader::open(dyn_store.clone(), second).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), 1800);
    assert_eq!(
        reader.get("during/1499").await.unwrap().as_deref(),
        Some(&b"w1499"[..])
    );
    // What was flushed before the restart is all there.
    let reader = HamtReader::open(dyn_store, first).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), 300);
    for i in 0..300 {
        assert_eq!(
            reader.get(&format!("before/{i}")).await.unwrap().unwrap(),
            format!("v{i}").as_bytes()
        );
    }
    node.stop();
    let _ = std::fs::remove_dir_all(&repo);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hamt-faults-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
