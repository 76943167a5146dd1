//! [`Call`]: the coroutine an async method returns when its result is not ready at once.
//!
//! py-hamt's methods are `async def`, so what they return is a coroutine: nothing runs until
//! it is awaited, it can be awaited from `asyncio.run` or handed to `asyncio.create_task`, and
//! it can be made where no event loop runs. A `Call` keeps those promises. Made outside a
//! running event loop, it starts its operation only when the loop first steps it; made inside
//! one, it wraps the asyncio future of an operation already under way. Either way it has the
//! coroutine protocol (`send`, `throw`, `close`, `__await__`), which is what
//! `asyncio.iscoroutine` checks.

use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Starts an operation on the running event loop: the awaitable it returns.
type Start = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send>;

/// Where a [`Call`] is.
enum State {
    /// Not started: made outside a running event loop.
    Deferred(Start),
    /// Under way: the iterator of the awaitable it delegates to (`__await__()`).
    Awaiting(Py<PyAny>),
    /// Finished, failed, closed, or being stepped right now.
    Done,
}

/// A coroutine over one `hamt_rs` operation.
#[pyclass(module = "hamt_rs._native", frozen)]
pub(crate) struct Call {
    state: Mutex<State>,
}

impl Call {
    /// A coroutine that runs `start` when the event loop first steps it.
    pub(crate) fn deferred(
        start: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send + 'static,
    ) -> Self {
        Self {
            state: Mutex::new(State::Deferred(Box::new(start))),
        }
    }

    /// A coroutine that awaits `awaitable`, an operation already under way.
    pub(crate) fn awaiting(awaitable: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            state: Mutex::new(State::Awaiting(
                awaitable.call_method0("__await__")?.unbind(),
            )),
        })
    }

    fn take(&self) -> State {
        std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(PoisonError::into_inner),
            State::Done,
        )
    }

    /// Sends `value` into the iterator it delegates to (starting the operation first if it
    /// has not started), keeping the iterator while it yields.
    fn step<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let iterator = match self.take() {
            State::Deferred(start) => start(py)?.call_method0("__await__")?,
            State::Awaiting(iterator) => iterator.into_bound(py),
            State::Done => {
                return Err(PyRuntimeError::new_err(
                    "cannot reuse an already awaited hamt_rs coroutine",
                ));
            }
        };
        let yielded = iterator.call_method1("send", (value,))?;
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) =
            State::Awaiting(iterator.unbind());
        Ok(yielded)
    }
}

#[pymethods]
impl Call {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.step(py, &py.None().into_bound(py))
    }

    /// Coroutine protocol: steps the operation, starting it on the first step.
    fn send<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.step(py, value)
    }

    /// Coroutine protocol: raises `exc` inside the operation (one not started never starts).
    #[pyo3(signature = (exc, value = None, tb = None))]
    fn throw<'py>(
        &self,
        py: Python<'py>,
        exc: &Bound<'py, PyAny>,
        value: Option<&Bound<'py, PyAny>>,
        tb: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.take() {
            State::Awaiting(iterator) => {
                *self.state.lock().unwrap_or_else(PoisonError::into_inner) =
                    State::Awaiting(iterator.clone_ref(py));
                let iterator = iterator.into_bound(py);
                let yielded = match (value, tb) {
                    (None, None) => iterator.call_method1("throw", (exc,)),
                    _ => iterator.call_method1("throw", (exc, value, tb)),
                };
                if yielded.is_err() {
                    self.take();
                }
                yielded
            }
            State::Deferred(_) | State::Done => Err(match value {
                Some(value) if !value.is_none() => PyErr::from_value(value.clone()),
                _ => PyErr::from_value(exc.clone()),
            }),
        }
    }

    /// Coroutine protocol: abandons the operation (one not started never starts).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let State::Awaiting(iterator) = self.take() {
            let iterator = iterator.into_bound(py);
            if iterator.hasattr("close")? {
                iterator.call_method0("close")?;
            }
        }
        Ok(())
    }
}
