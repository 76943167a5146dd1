//! Versions: `commit`, `log`, `branch`, `tag`, `merge`, `expire`, `gc`, and the resolution
//! of revisions (`BRANCH`, `TAG`, `COMMIT`, `BRANCH~N`) wherever a root is taken.
//!
//! Refs live in the ref store that goes with `--store` (see `hamt_registry::open_refs`:
//! the store's own database for sled, objects under the prefix for S3, a sled database in
//! the user's data directory for IPFS stores), or in the one `--refs URL` names. It is
//! opened the first time a command needs it, so commands given CIDs never touch it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use hamt::{Change, Cid, Codec};
use hamt_registry::OpenStore;
use hamt_versions::{Commit, CommitOptions, GcOptions, Merged, RefKind, RefStore, Repo};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Output, println_checked};

/// The default branch.
const MAIN: &str = "main";

/// The versions of the store a command runs on: its refs, opened the first time a
/// revision needs them, and the resolution of the revisions that arguments name.
pub(crate) struct Versions<'a> {
    opened: &'a OpenStore,
    url: String,
    refs_url: Option<String>,
    refs: tokio::sync::OnceCell<Arc<dyn RefStore>>,
}

impl<'a> Versions<'a> {
    pub(crate) fn new(opened: &'a OpenStore, url: String, refs_url: Option<String>) -> Self {
        Self {
            opened,
            url,
            refs_url,
            refs: tokio::sync::OnceCell::new(),
        }
    }

    fn store(&self) -> &Arc<dyn hamt::BlockStore> {
        self.opened.store()
    }

    async fn repo(&self) -> Result<Repo, CliError> {
        let refs = self
            .refs
            .get_or_try_init(|| async {
                hamt_registry::open_refs(self.opened, &self.url, self.refs_url.as_deref())
            })
            .await?;
        Ok(Repo::new(self.store().clone(), refs.clone()))
    }

    /// The dataset root `text` names: a CID (a commit's CID stands for its tree), a
    /// branch, a tag or `BRANCH~N`. Plain CIDs of anything but a commit never touch the
    /// refs.
    pub(crate) async fn root(&self, text: &str) -> Result<Cid, CliError> {
        if let Ok(cid) = hamt::parse_cid(text) {
            // A raw block is never a commit.
            if cid.codec() != Codec::DagCbor.code() {
                return Ok(cid);
            }
            return Ok(
                match Commit::read_if_commit(self.store().as_ref(), &cid).await? {
                    Some(commit) => commit.root,
                    None => cid,
                },
            );
        }
        Ok(self.repo().await?.resolve(text).await?.root)
    }

    /// The DAG `text` names for commands that copy blocks (`export-car`, `pin`): a CID as
    /// it is, and for a branch, tag or `BRANCH~N` its commit, so the history comes along.
    pub(crate) async fn dag_root(&self, text: &str) -> Result<Cid, CliError> {
        if let Ok(cid) = hamt::parse_cid(text) {
            return Ok(cid);
        }
        let revision = self.repo().await?.resolve(text).await?;
        Ok(revision.commit.unwrap_or(revision.root))
    }
}

/// `hamt commit`.
#[derive(Args)]
pub(crate) struct CommitArgs {
    /// The dataset's root (a CID, or any revision: its tree is committed).
    root: String,
    /// The branch to commit to (made by its first commit).
    #[arg(short, long, default_value = MAIN)]
    branch: String,
    /// What changed.
    #[arg(short, long)]
    message: String,
    /// The commit ROOT was written on (default: the branch's head now). When the branch
    /// moved since, the changes from it to ROOT are merged onto the new head.
    #[arg(long)]
    base: Option<String>,
    /// Fail when the branch is not at the base, instead of merging onto its new head.
    #[arg(long)]
    no_rebase: bool,
    /// Who makes the commit.
    #[arg(long)]
    author: Option<String>,
    /// KEY=VALUE to keep with the commit (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
}

/// `hamt log`.
#[derive(Args)]
pub(crate) struct LogArgs {
    /// Where to start (a branch, tag, commit or `BRANCH~N`).
    #[arg(default_value = MAIN)]
    revision: String,
    /// At most this many commits.
    #[arg(short = 'n', long)]
    limit: Option<usize>,
    /// Leave out the keys each commit changed.
    #[arg(long)]
    no_keys: bool,
}

/// `hamt branch` and `hamt tag`.
#[derive(Subcommand)]
pub(crate) enum RefCommand {
    /// List them with their commits.
    List,
    /// Make NAME at REVISION (default: the head of `main`).
    Create {
        /// The name.
        name: String,
        /// The commit.
        revision: Option<String>,
    },
    /// Delete NAME.
    Delete {
        /// The name.
        name: String,
        /// Only if it is at this commit.
        #[arg(long)]
        expect: Option<String>,
    },
    /// Point the branch NAME at REVISION (branches only).
    Reset {
        /// The branch.
        name: String,
        /// The commit.
        revision: String,
        /// Only if it is at this commit now.
        #[arg(long)]
        expect: Option<String>,
    },
}

/// `hamt merge`.
#[derive(Args)]
pub(crate) struct MergeArgs {
    /// What to merge (a branch, tag or commit).
    revision: String,
    /// The branch to merge into.
    #[arg(short, long, default_value = MAIN)]
    branch: String,
    /// The merge commit's message.
    #[arg(short, long)]
    message: Option<String>,
    /// Who makes the merge.
    #[arg(long)]
    author: Option<String>,
}

/// `hamt expire`.
#[derive(Args)]
pub(crate) struct ExpireArgs {
    /// The branch.
    #[arg(default_value = MAIN)]
    branch: String,
    /// Drop commits made before this: an RFC 3339 time (`2024-05-01T00:00:00Z`) or an age
    /// (`30d`, `12h`).
    #[arg(long)]
    before: String,
}

/// `hamt gc`.
#[derive(Args)]
pub(crate) struct GcArgs {
    /// Spare what became unreachable less than this long ago (`24h`, `30m`, `0s`).
    #[arg(long, default_value = "24h")]
    grace: String,
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Name every block or pack deleted (or that would be).
    #[arg(long)]
    list: bool,
    /// Run even with no branches or tags at all (everything unreachable goes).
    #[arg(long)]
    allow_no_refs: bool,
}

fn options(author: Option<String>, metadata: &[String]) -> Result<CommitOptions, CliError> {
    let mut map = BTreeMap::new();
    for item in metadata {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| CliError::BadInput(format!("--meta {item:?} is not KEY=VALUE")))?;
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(CommitOptions {
        author,
        metadata: map,
        time_ms: None,
    })
}

fn time_text(ms: i64) -> String {
    humantime::format_rfc3339_millis(hamt_versions::from_ms(ms)).to_string()
}

pub(crate) async fn commit(
    v: &Versions<'_>,
    args: CommitArgs,
    out: &Output,
) -> Result<(), CliError> {
    let repo = v.repo().await?;
    let root = v.root(&args.root).await?;
    let base = match &args.base {
        Some(b) => Some(commit_of(&repo, b).await?),
        None => repo.head(&args.branch).await?,
    };
    let options = options(args.author, &args.metadata)?;
    let done = if args.no_rebase {
        repo.commit(&args.branch, root, base, &args.message, &options)
            .await?
    } else {
        repo.commit_rebasing(&args.branch, base, root, &args.message, &options)
            .await?
    };
    out.durable_line(
        repo.store().as_ref(),
        &done.commit.to_string(),
        &json!({
            "commit": done.commit.to_string(),
            "root": done.root.to_string(),
            "branch": args.branch,
            "parent": done.parent.map(|c| c.to_string()),
            "rebased": done.rebased,
        }),
    )
    .await
}

/// The commit `text` names.
async fn commit_of(repo: &Repo, text: &str) -> Result<Cid, CliError> {
    repo.resolve(text)
        .await?
        .commit
        .ok_or_else(|| CliError::BadInput(format!("{text:?} is a tree, not a commit")))
}

fn change_json(change: &Change) -> serde_json::Value {
    match change {
        Change::Added { key, .. } => json!({"op": "added", "key": key}),
        Change::Removed { key, .. } => json!({"op": "removed", "key": key}),
        Change::Modified { key, .. } => json!({"op": "modified", "key": key}),
    }
}

pub(crate) async fn log(v: &Versions<'_>, args: LogArgs, out: &Output) -> Result<(), CliError> {
    let repo = v.repo().await?;
    let start = commit_of(&repo, &args.revision).await?;
    let entries = repo.log(start, args.limit, !args.no_keys).await?;
    let mut text = String::new();
    for e in &entries {
        if out.json {
            let line = json!({
                "commit": e.cid.to_string(),
                "root": e.commit.root.to_string(),
                "parents": e.commit.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "message": e.commit.message,
                "time": time_text(e.commit.time_ms),
                "time_ms": e.commit.time_ms,
                "author": e.commit.author,
                "metadata": e.commit.metadata,
                "changes": e.changes.as_ref().map(|c| c.iter().map(change_json).collect::<Vec<_>>()),
            });
            println_checked(&line.to_string())?;
            continue;
        }
        let _ = writeln!(text, "commit {}", e.cid);
        if e.commit.parents.len() > 1 {
            let parents: Vec<String> = e.commit.parents.iter().map(ToString::to_string).collect();
            let _ = writeln!(text, "merge  {}", parents.join(" "));
        }
        let _ = writeln!(text, "root   {}", e.commit.root);
        if let Some(a) = &e.commit.author {
            let _ = writeln!(text, "author {a}");
        }
        let _ = writeln!(text, "date   {}", time_text(e.commit.time_ms));
        for (k, val) in &e.commit.metadata {
            let _ = writeln!(text, "meta   {k}={val}");
        }
        let _ = writeln!(text, "\n    {}\n", e.commit.message.replace('\n', "\n    "));
        for c in e.changes.iter().flatten() {
            let sign = match c {
                Change::Added { .. } => '+',
                Change::Removed { .. } => '-',
                Change::Modified { .. } => '~',
            };
            let _ = writeln!(text, "    {sign} {}", c.key());
        }
        if e.changes.as_ref().is_some_and(|c| !c.is_empty()) {
            text.push('\n');
        }
    }
    if !out.json {
        crate::print_checked(&text)?;
    }
    Ok(())
}

pub(crate) async fn refs(
    v: &Versions<'_>,
    kind: RefKind,
    command: RefCommand,
    out: &Output,
) -> Result<(), CliError> {
    let repo = v.repo().await?;
    let what = match kind {
        RefKind::Branch => "branch",
        RefKind::Tag => "tag",
    };
    match command {
        RefCommand::List => {
            let list = repo.list(kind).await?;
            if out.json {
                let map: BTreeMap<&str, String> = list
                    .iter()
                    .map(|(n, c)| (n.name(), c.to_string()))
                    .collect();
                return Output::value(&json!(map));
            }
            let text: Vec<String> = list
                .iter()
                .map(|(n, c)| format!("{} {c}", n.name()))
                .collect();
            if text.is_empty() {
                return Ok(());
            }
            println_checked(&text.join("\n"))
        }
        RefCommand::Create { name, revision } => {
            let at = commit_of(&repo, revision.as_deref().unwrap_or(MAIN)).await?;
            match kind {
                RefKind::Branch => repo.create_branch(&name, at).await?,
                RefKind::Tag => repo.create_tag(&name, at).await?,
            }
            out.durable_line(
                repo.store().as_ref(),
                &format!("{what} {name} at {at}"),
                &json!({what: name, "commit": at.to_string()}),
            )
            .await
        }
        RefCommand::Delete { name, expect } => {
            let was = match kind {
                RefKind::Branch => {
                    let expect = match expect {
                        Some(e) => Some(commit_of(&repo, &e).await?),
                        None => None,
                    };
                    repo.delete_branch(&name, expect).await?
                }
                RefKind::Tag => repo.delete_tag(&name).await?,
            };
            out.line(
                &format!("deleted {what} {name} (was {was})"),
                &json!({"deleted": name, "was": was.to_string()}),
            )
        }
        RefCommand::Reset {
            name,
            revision,
            expect,
        } => {
            if kind == RefKind::Tag {
                return Err(CliError::BadInput(
                    "tags are never moved: delete the tag and create it again".into(),
                ));
            }
            let to = commit_of(&repo, &revision).await?;
            let expect = match expect {
                Some(e) => Some(commit_of(&repo, &e).await?),
                None => None,
            };
            let was = repo.reset_branch(&name, to, expect).await?;
            out.durable_line(
                repo.store().as_ref(),
                &format!("branch {name} at {to} (was {was})"),
                &json!({"branch": name, "commit": to.to_string(), "was": was.to_string()}),
            )
            .await
        }
    }
}

pub(crate) async fn merge(v: &Versions<'_>, args: MergeArgs, out: &Output) -> Result<(), CliError> {
    let repo = v.repo().await?;
    let other = commit_of(&repo, &args.revision).await?;
    let message = args
        .message
        .unwrap_or_else(|| format!("merge {} into {}", args.revision, args.branch));
    let options = options(args.author, &[])?;
    let merged = repo
        .merge_into(&args.branch, other, &message, &options)
        .await?;
    let how = match merged {
        Merged::UpToDate(_) => "up-to-date",
        Merged::FastForward(_) => "fast-forward",
        Merged::Merged(_) => "merged",
    };
    out.durable_line(
        repo.store().as_ref(),
        &merged.head().to_string(),
        &json!({"commit": merged.head().to_string(), "branch": args.branch, "result": how}),
    )
    .await
}

/// A time given as RFC 3339 or as an age before now.
fn parse_time(text: &str) -> Result<SystemTime, CliError> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let age = parse_duration(text)?;
    SystemTime::now()
        .checked_sub(age)
        .ok_or_else(|| CliError::BadInput(format!("{text:?} is too long ago")))
}

fn parse_duration(text: &str) -> Result<Duration, CliError> {
    humantime::parse_duration(text).map_err(|e| {
        CliError::BadInput(format!(
            "{text:?} is neither an RFC 3339 time nor a duration such as 30d or 12h ({e})"
        ))
    })
}

pub(crate) async fn expire(
    v: &Versions<'_>,
    args: ExpireArgs,
    out: &Output,
) -> Result<(), CliError> {
    let repo = v.repo().await?;
    let before = parse_time(&args.before)?;
    let done = repo
        .expire(&args.branch, hamt_versions::to_ms(before))
        .await?;
    out.durable_line(
        repo.store().as_ref(),
        &format!(
            "{} commits expired, {} kept; {} is at {}",
            done.expired, done.kept, args.branch, done.head
        ),
        &json!({
            "branch": args.branch,
            "commit": done.head.to_string(),
            "was": done.old_head.to_string(),
            "expired": done.expired,
            "kept": done.kept,
        }),
    )
    .await
}

pub(crate) async fn gc(v: &Versions<'_>, args: GcArgs, out: &Output) -> Result<(), CliError> {
    let repo = v.repo().await?;
    let sweep = { hamt_registry::sweeper(v.opened) };
    let sweep = sweep.ok_or_else(|| {
        CliError::BadInput(format!(
            "{} stores have no garbage collection here (an IPFS node collects its own \
             garbage: unpin what no ref needs)",
            v.opened.scheme()
        ))
    })??;
    let options = GcOptions {
        grace: parse_duration(&args.grace)?,
        dry_run: args.dry_run,
        list: args.list,
        allow_no_refs: args.allow_no_refs,
        now: None,
    };
    let report = repo.gc(sweep.as_ref(), &options).await?;
    let s = &report.sweep;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut text = format!(
        "{} refs keep {} blocks; {} {} of {} unreachable ({} bytes); {} kept within grace ({} bytes); {} {} held ({} bytes)",
        report.refs,
        report.live,
        verb,
        s.deleted,
        s.unreachable,
        s.deleted_bytes,
        s.pending,
        s.pending_bytes,
        s.held,
        s.unit,
        s.held_bytes
    );
    if s.reclaimable_bytes > 0 {
        let _ = write!(
            text,
            "; {} bytes of unreachable blocks sit in {} that also hold live ones",
            s.reclaimable_bytes, s.unit
        );
    }
    for unit in &s.listed {
        text.push('\n');
        text.push_str(unit);
    }
    out.line(
        &text,
        &json!({
            "dry_run": args.dry_run,
            "refs": report.refs,
            "live_blocks": report.live,
            "unit": s.unit,
            "held": s.held,
            "held_bytes": s.held_bytes,
            "unreachable": s.unreachable,
            "deleted": s.deleted,
            "deleted_bytes": s.deleted_bytes,
            "pending": s.pending,
            "pending_bytes": s.pending_bytes,
            "reclaimable_bytes": s.reclaimable_bytes,
            "listed": s.listed,
        }),
    )
}
