//! Where credentials come from. `--store s3://…` without credentials used to fall through
//! to `object_store`'s last resort, the instance metadata service at 169.254.169.254, after
//! work had begun: now a store without credentials is a typed error before any request, and
//! the metadata service is asked only when the URL says `credentials=instance`.
//!
//! Each store here is built from an explicit environment (`S3StoreBuilder::from_vars`), so
//! the test process's own `AWS_*` variables cannot leak in. `AWS_METADATA_ENDPOINT` points
//! at a local listener that counts connections: the metadata service this build would ask.
//! The tests that reach a real S3 server use moto's, from `cargo xtask test`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hamt::{BlockStore, Codec};
use hamt_store_s3::{Error, S3StoreBuilder};

/// A loopback listener that counts the connections made to it and closes each at once.
struct Watch {
    url: String,
    connections: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

async fn watch() -> Watch {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    Watch {
        url,
        connections,
        _task: task,
    }
}

impl Watch {
    /// Connections so far, after giving any that were under way time to arrive.
    async fn connections(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.connections.load(Ordering::SeqCst)
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn no_credentials_is_a_typed_error_before_any_request() {
    let metadata = watch().await;
    let s3 = watch().await;
    let env = vars(&[("AWS_METADATA_ENDPOINT", &metadata.url)]);
    for url in [
        format!("s3://bucket/p?endpoint={}", s3.url),
        // Real AWS, no endpoint: still no metadata service unless asked for.
        "s3://bucket/p".to_owned(),
    ] {
        let err = S3StoreBuilder::from_vars(env.clone())
            .with_url(&url)
            .unwrap()
            .build()
            .unwrap_err();
        let Error::MissingCredentials { reason } = &err else {
            panic!("{url}: expected MissingCredentials, got {err:?}");
        };
        assert!(reason.contains("AWS_ACCESS_KEY_ID"), "{reason}");
        assert!(
            err.to_string().contains("no S3 credentials"),
            "the message names what is missing: {err}"
        );
        // Through the BlockStore error type (what the registry and the CLI see).
        assert!(matches!(
            hamt::Error::from(err),
            hamt::Error::Unauthorized { store: "s3", .. }
        ));
    }
    // Half a key pair names the missing half.
    let err = S3StoreBuilder::from_vars(vars(&[("AWS_ACCESS_KEY_ID", "id")]))
        .with_url(&format!("s3://bucket/p?endpoint={}", s3.url))
        .unwrap()
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingCredentials { reason } if reason.contains("AWS_SECRET_ACCESS_KEY is not")),
        "{err:?}"
    );
    assert_eq!(
        metadata.connections().await,
        0,
        "the metadata service was asked"
    );
    assert_eq!(s3.connections().await, 0, "work began before the error");
}

/// Anonymous access (a public bucket) goes to the S3 server unsigned, and never to the
/// metadata service.
#[tokio::test]
async fn anonymous_requests_go_to_the_server_unsigned() {
    let metadata = watch().await;
    let s3 = watch().await;
    let store = S3StoreBuilder::from_vars(vars(&[("AWS_METADATA_ENDPOINT", &metadata.url)]))
        .with_url(&format!(
            "s3://bucket/p?endpoint={}&credentials=anonymous&timeout=2&retries=0",
            s3.url
        ))
        .unwrap()
        .build()
        .unwrap();
    let cid = hamt::HashAlg::Blake3.cid(Codec::Raw, b"x");
    // The listener closes the connection: an error, but from the S3 server's address.
    assert!(store.get(&cid).await.is_err());
    assert!(s3.connections().await > 0);
    assert_eq!(
        metadata.connections().await,
        0,
        "the metadata service was asked"
    );
}

/// The listener does see a client that asks it: without this, the zero counts above
/// would prove nothing.
#[tokio::test]
async fn the_metadata_service_is_asked_only_when_the_url_says_so() {
    let metadata = watch().await;
    let s3 = watch().await;
    let store = S3StoreBuilder::from_vars(vars(&[("AWS_METADATA_ENDPOINT", &metadata.url)]))
        .with_url(&format!(
            "s3://bucket/p?endpoint={}&credentials=instance&timeout=2&retries=0",
            s3.url
        ))
        .unwrap()
        .build()
        .unwrap();
    let cid = hamt::HashAlg::Blake3.cid(Codec::Raw, b"x");
    assert!(store.get(&cid).await.is_err());
    assert!(metadata.connections().await > 0);
}

#[tokio::test]
async fn credentials_from_the_environment_never_ask_the_metadata_service() {
    let metadata = watch().await;
    let endpoint = hamt_test_support::required_env("HAMT_TEST_S3_ENDPOINT");
    let bucket = hamt_test_support::required_env("HAMT_TEST_S3_BUCKET");
    let env = vars(&[
        ("AWS_METADATA_ENDPOINT", &metadata.url),
        ("AWS_ACCESS_KEY_ID", "hamt-test"),
        ("AWS_SECRET_ACCESS_KEY", "hamt-test-secret"),
    ]);
    {
        let url = format!(
            "s3://{bucket}/creds-env-{}?endpoint={endpoint}",
            std::process::id()
        );
        let store = S3StoreBuilder::from_vars(env.clone())
            .with_url(&url)
            .unwrap()
            .build()
            .unwrap();
        let cid = store
            .put(Codec::Raw, Bytes::from_static(b"signed or not"))
            .await
            .unwrap();
        store.sync().await.unwrap();
        let fresh = S3StoreBuilder::from_vars(env.clone())
            .with_url(&url)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            &fresh.get(&cid).await.unwrap()[..],
            b"signed or not",
            "{url}"
        );
    }
    assert_eq!(
        metadata.connections().await,
        0,
        "the metadata service was asked"
    );
}
