//! Stopping a load cleanly on SIGINT or SIGTERM: the caller raises an
//! [`Interrupt`] (the CLI does from a signal thread); running statements
//! on every connection the load opened are cancelled, the pipeline stops
//! at its next chunk, nothing is committed, and the run is recorded as
//! `interrupted`.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use postgres::{CancelToken, Client};

use super::Database;

/// A shared stop request. Cloning shares it.
#[derive(Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The signal that asked to stop, 0 while none did.
    signal: AtomicI32,
    /// Connections whose statements a stop cancels.
    watched: Mutex<Vec<(Database, CancelToken)>>,
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interrupt({:?})", self.raised())
    }
}

impl Interrupt {
    /// A stop request nobody raised yet.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Asks the load to stop because of `signal` (its number), and
    /// cancels the statements running on its connections. Only the first
    /// call counts.
    pub fn raise(&self, signal: i32) {
        if self
            .inner
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let watched = self.inner.watched.lock().expect("interrupt");
        for (db, token) in watched.iter() {
            // A connection that is gone, or idle, has nothing to cancel.
            let _ = db.cancel(token);
        }
    }

    /// The signal that asked to stop, if one did.
    pub fn raised(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Cancels `client`'s statements when a stop is raised (at once when
    /// one already was).
    pub(crate) fn watch(&self, db: &Database, client: &Client) {
        let token = client.cancel_token();
        if self.raised().is_some() {
            let _ = db.cancel(&token);
        }
        self.inner
            .watched
            .lock()
            .expect("interrupt")
            .push((db.clone(), token));
    }
}
