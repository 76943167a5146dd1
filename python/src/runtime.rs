//! The tokio runtime the extension owns, and the bridge from Rust futures to Python awaitables.
//!
//! Every async method returns what [`spawn`] makes of its future. The future is polled once
//! on the calling thread with the GIL released: most operations on a local store (a cached
//! node, a sled read, an in-memory insert) finish there, and the caller gets a [`Ready`]
//! awaitable that costs no trip through the event loop. A future that has to wait is handed
//! to the runtime and awaited through an asyncio future (pyo3-async-runtimes), wrapped in a
//! [`Call`] coroutine; so is a call made outside a running event loop, which starts when it is
//! awaited. Panics become `hamt_rs.PanicError`, never a crashed interpreter.

use std::any::TypeId;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::FutureExt as _;
use pyo3::BoundObject;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use tokio::runtime::Runtime;

use crate::coroutine::Call;
use crate::errors::PanicError;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The extension's multi-threaded runtime, started on first use.
pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("hamt-rs")
            .build()
            // Without threads or a timer nothing of this module can work; there is no
            // smaller thing to fall back to.
            .expect("cannot start the hamt_rs tokio runtime")
    })
}

/// Registers the runtime with pyo3-async-runtimes and the awaitable class.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Fails only when it is already registered (a second import of the module).
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(runtime());
    m.add_class::<Ready>()?;
    m.add_class::<Call>()?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}

/// Panics inside the extension (in a future when `in_future`), so the tests can check that a
/// panic becomes `hamt_rs.PanicError` and never reaches the interpreter.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>, in_future: bool) -> PyResult<Bound<'_, PyAny>> {
    assert!(in_future, "a panic for the tests");
    spawn(py, async move {
        tokio::task::yield_now().await;
        assert!(!in_future, "a panic for the tests, in a future");
        Ok(())
    })
}

/// `fut` with panics caught and turned into `hamt_rs.PanicError`.
pub(crate) async fn catch<F, T>(fut: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>>,
{
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(panic_error(&*panic)),
    }
}

/// The Python exception for a caught panic payload.
pub(crate) fn panic_error(panic: &(dyn std::any::Any + Send)) -> PyErr {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    PanicError::new_err(format!(
        "internal error in hamt_rs (a Rust panic, caught): {what}"
    ))
}

/// Where the futures of a batch run (see [`parallel`]).
#[derive(Clone)]
pub(crate) enum Spread {
    /// On the thread that polls the batch.
    Here,
    /// Each as a task of its own on the runtime's worker threads, in the caller's asyncio
    /// task locals when it has them (a store backed by a Python object needs them to call
    /// it; a synchronous caller has none, and only native stores are read that way).
    Tasks(Option<TaskLocals>),
}

/// Runs `fut` where `spread` says and waits for it.
///
/// For CPU-bound steps of a batch (decoding or encoding chunks): a batch's futures polled
/// together in one task run on one thread, and a local store answers without ever
/// yielding, so they would all run on the caller's thread one after another. As tasks they
/// spread over every core. A batch of one gains nothing from that and would lose the answer
/// without a trip through the event loop (see [`spawn`]); callers that run many of those at
/// once (dask's threads) bring their own parallelism.
pub(crate) async fn parallel<F, T>(spread: Spread, fut: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let joined = match spread {
        Spread::Here => return fut.await,
        Spread::Tasks(Some(locals)) => {
            runtime()
                .spawn(pyo3_async_runtimes::tokio::scope(locals, catch(fut)))
                .await
        }
        Spread::Tasks(None) => runtime().spawn(catch(fut)).await,
    };
    match joined {
        Ok(result) => result,
        // `catch` keeps panics inside the task; what is left is the runtime shutting down.
        Err(e) => Err(PyRuntimeError::new_err(format!(
            "a hamt_rs task did not finish: {e}"
        ))),
    }
}

/// The asyncio event loop and context of the calling Python code, for [`parallel`] tasks.
///
/// # Errors
/// When called outside a running asyncio event loop.
pub(crate) fn task_locals(py: Python<'_>) -> PyResult<TaskLocals> {
    pyo3_async_runtimes::tokio::get_current_locals(py)
}

/// A Python awaitable for `fut`, which runs on the extension's runtime: a [`Ready`] result,
/// or a [`Call`] coroutine (see [`crate::coroutine`]). Outside a running asyncio event loop
/// nothing runs until the coroutine is awaited, as with py-hamt's `async def` methods.
///
/// # Errors
/// Python's, making the awaitable.
pub(crate) fn spawn<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    if let Ok(locals) = task_locals(py) {
        start(py, locals, fut)
    } else {
        let call = Call::deferred(move |py| start(py, task_locals(py)?, fut));
        Ok(Bound::new(py, call)?.into_any())
    }
}

/// [`spawn`] on the event loop of `locals`: `fut` polled once here, then on the runtime.
fn start<F, T>(py: Python<'_>, locals: TaskLocals, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let mut fut = Box::pin(pyo3_async_runtimes::tokio::scope(
        locals.clone(),
        catch(async move { fut.await.map(ToPython) }),
    ));
    let first = py.detach(|| {
        let _entered = runtime().enter();
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    });
    match first {
        Poll::Ready(result) => {
            let value = result.and_then(|v| v.into_pyobject(py).map(Bound::unbind));
            Ok(Bound::new(py, Ready::new(value))?.into_any())
        }
        // The runtime polls it again with a real waker, which replaces the no-op one.
        Poll::Pending => {
            let future = pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals, fut)?;
            Ok(Bound::new(py, Call::awaiting(&future)?)?.into_any())
        }
    }
}

/// An operation's result on its way to Python: `()` becomes `None`, what an `async def` that
/// returns nothing gives (and pyo3 gives for a function returning `()`), not an empty tuple.
struct ToPython<T>(T);

impl<'py, T> IntoPyObject<'py> for ToPython<T>
where
    T: IntoPyObject<'py> + 'static,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return Ok(py.None().into_bound(py));
        }
        self.0
            .into_pyobject(py)
            .map(BoundObject::into_any)
            .map(BoundObject::into_bound)
            .map_err(Into::into)
    }
}

/// Runs the future `make` builds to completion on the runtime from synchronous code, with the GIL released.
///
/// # Errors
/// The future's error, or `PanicError`.
pub(crate) fn block_on<M, F, T>(py: Python<'_>, make: M) -> PyResult<T>
where
    M: FnOnce() -> F + Send,
    F: Future<Output = PyResult<T>>,
    T: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(PyRuntimeError::new_err(
            "a synchronous hamt_rs call cannot run on the extension's own runtime threads",
        ));
    }
    py.detach(|| runtime().block_on(catch(make())))
}

/// An awaitable whose result is already known: `await` returns it without suspending.
#[pyclass(module = "hamt_rs._native", frozen)]
pub(crate) struct Ready {
    value: Mutex<Option<PyResult<Py<PyAny>>>>,
}

impl Ready {
    pub(crate) fn new(value: PyResult<Py<PyAny>>) -> Self {
        Self {
            value: Mutex::new(Some(value)),
        }
    }

    fn take(&self) -> PyResult<Py<PyAny>> {
        let taken = self
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match taken {
            Some(Ok(value)) => Err(PyStopIteration::new_err((value,))),
            Some(Err(err)) => Err(err),
            None => Err(PyRuntimeError::new_err(
                "cannot reuse an already awaited hamt_rs result",
            )),
        }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self) -> PyResult<Py<PyAny>> {
        self.take()
    }

    /// Generator protocol: the value sent is ignored, the result is returned.
    fn send(&self, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.take()
    }

    /// Generator protocol: raises the exception thrown in.
    #[pyo3(signature = (exc, _value = None, _tb = None))]
    fn throw(
        &self,
        exc: &Bound<'_, PyAny>,
        _value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Err(PyErr::from_value(exc.clone()))
    }

    /// Generator protocol: drops the result.
    fn close(&self) {
        self.value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}
