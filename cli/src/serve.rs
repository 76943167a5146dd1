//! `hamt serve`: the store as an IPFS trustless HTTP gateway.

use std::sync::Arc;

use clap::Args;
use hamt::BlockStore;

use crate::error::CliError;

/// `hamt serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Require `Authorization: Bearer TOKEN`.
    #[arg(long, env = "HAMT_GATEWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Most requests handled at once (at least 1).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Seconds a request may take before it gets a 504 (at least 1).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Most connections open at once (at least 1); beyond them the connection idle the
    /// longest is closed, or new clients wait. Default: 1024, or 3/4 of the open-file limit.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Seconds a client may take to send its request headers (at least 1).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds a response may wait for the client to take bytes before it is cut (at least 1).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    send_timeout: u64,
}

/// Serves `store` until SIGTERM or Ctrl-C.
pub(crate) async fn serve(store: Arc<dyn BlockStore>, args: ServeArgs) -> Result<(), CliError> {
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let mut builder = hamt_gateway::GatewayBuilder::new(store)
        .concurrency(usize::try_from(args.concurrency).unwrap_or(usize::MAX))
        .timeout(std::time::Duration::from_secs(args.timeout))
        .header_timeout(std::time::Duration::from_secs(args.header_timeout))
        .send_timeout(std::time::Duration::from_secs(args.send_timeout));
    if let Some(n) = args.max_connections {
        builder = builder.max_connections(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(token) = args.token {
        builder = builder.bearer_token(token);
    }
    builder
        .build()
        .serve(&args.listen, hamt_gateway::shutdown_signal())
        .await
        .map_err(CliError::from)
}
