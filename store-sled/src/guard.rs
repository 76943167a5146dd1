//! The boundary where sled's panics become errors.
//!
//! sled 0.34 interprets the bytes of its files with assertions and slice indexing as well as
//! checksums: a database truncated mid-segment, or with a missing blob file, makes
//! `Config::open` panic during recovery (`tried to serialize Uninitialized`,
//! `segment.rs: index out of bounds`) instead of returning `Error::Corruption`. Those bytes
//! come from outside the program, so a panic there is a damaged-database error, not a bug of
//! ours. Every call into sled in this crate therefore runs through [`guard`] (or
//! [`Guarded`] for sled's futures): a panic inside it is caught and reported as
//! [`Error::CorruptDatabase`](crate::Error::CorruptDatabase). This is the narrowest boundary
//! that covers it: above it every block is verified against its CID, below it is sled.
//!
//! Catching the unwind alone would still let the default panic hook print
//! `thread 'main' panicked at …` to stderr, which reads like a crash of the program. A hook
//! installed once (wrapping whatever hook was there before) keeps quiet for panics inside a
//! guarded call on the same thread and keeps the message for the error instead. Panics
//! elsewhere go to the previous hook unchanged, except those of sled's own background
//! threads: sled catches the ones of its I/O pool itself (the call waiting on it gets an
//! error), and a panic of its `log flusher` thread would make dropping the database wait for
//! that thread forever, so after one the databases are leaked at drop instead (their files
//! stay locked until the process exits). Either way such a panic is one warning line, not a
//! crash report. All this needs unwinding panics: a binary built with `panic = "abort"` still
//! dies on a damaged database.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

thread_local! {
    /// True while this thread runs a guarded call into sled.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// The message of the last panic inside a guarded call on this thread.
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Set once a sled `log flusher` thread has panicked: dropping a database would then hang.
static FLUSHER_PANICKED: AtomicBool = AtomicBool::new(false);

/// The name sled 0.34 gives its periodic flusher thread.
const FLUSHER_THREAD: &str = "log flusher";
/// The prefix of the names of sled 0.34's I/O pool threads.
const IO_THREAD_PREFIX: &str = "sled-io-";

/// True once a sled flusher thread has panicked in this process, so that dropping a
/// database would wait for it forever.
pub(crate) fn flusher_panicked() -> bool {
    FLUSHER_PANICKED.load(Ordering::Relaxed)
}

/// Runs `f` (a call into sled); a panic inside it is caught and returned as its message.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = GUARDED.with(|g| g.replace(true));
    // sled's handles are not `UnwindSafe`; after a caught panic the caller reports the
    // database as damaged and does not trust what the call was doing.
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    result.map_err(|payload| {
        MESSAGE
            .with(|m| m.borrow_mut().take())
            .unwrap_or_else(|| payload_message(&*payload))
    })
}

/// A sled future whose every poll runs under [`guard`].
pub(crate) struct Guarded<F>(pub(crate) Pin<Box<F>>);

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match guard(move || inner.poll(cx)) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(message) => Poll::Ready(Err(message)),
        }
    }
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let message = payload_message(info.payload());
    match info.location() {
        Some(at) => format!("{message} (at {}:{})", short_path(at.file()), at.line()),
        None => message,
    }
}

/// A dependency's source path from its crate directory on (`sled-0.34.7/src/…`), without the
/// cargo registry's directories in front.
fn short_path(file: &str) -> &str {
    const REGISTRY: &str = "/registry/src/";
    file.find(REGISTRY)
        .and_then(|i| file[i + REGISTRY.len()..].split_once('/'))
        .map_or(file, |(_index, rest)| rest)
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic while this thread's locals are being destroyed.
            if GUARDED.try_with(Cell::get).unwrap_or(false) {
                let _ = MESSAGE.try_with(|m| *m.borrow_mut() = Some(describe(info)));
                return;
            }
            let thread = std::thread::current();
            match thread.name() {
                Some(FLUSHER_THREAD) => {
                    FLUSHER_PANICKED.store(true, Ordering::Relaxed);
                    eprintln!(
                        "warning: sled's flusher thread stopped ({}); databases are no longer \
                         flushed in the background and are left open at exit",
                        describe(info)
                    );
                }
                Some(name) if name.starts_with(IO_THREAD_PREFIX) => {
                    eprintln!(
                        "warning: a sled I/O thread failed ({}); the call waiting on it \
                         reports an error",
                        describe(info)
                    );
                }
                _ => previous(info),
            }
        }));
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::guard;

    #[test]
    fn a_panic_inside_is_its_message() {
        let err = guard(|| -> u8 { panic!("bad bytes") }).unwrap_err();
        assert!(err.starts_with("bad bytes (at "), "{err}");
        assert!(err.contains("guard.rs"), "{err}");
        assert_eq!(guard(|| 7), Ok(7));
    }

    #[test]
    fn registry_paths_are_shortened() {
        assert_eq!(
            super::short_path(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sled-0.34.7/src/serialization.rs"
            ),
            "sled-0.34.7/src/serialization.rs"
        );
        assert_eq!(super::short_path("src/guard.rs"), "src/guard.rs");
    }

    #[test]
    fn nested_guards_restore_the_outer_state() {
        let outer = guard(|| -> u8 {
            assert!(guard(|| -> u8 { panic!("inner") }).is_err());
            panic!("outer")
        });
        let err = outer.unwrap_err();
        // The location is only there when the hook saw the outer panic as guarded.
        assert!(err.starts_with("outer (at "), "{err}");
    }
}
