//! Bounded task queues carrying batches of tuples.
//!
//! A task's queue holds at most `queue_capacity / batch_size` batches of at most
//! `batch_size` tuples, so it never holds more than `queue_capacity` tuples. Producers
//! reserve a slot before they count the tuples in, which keeps the depth gauge an upper
//! bound of what is really queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use squall_topology::Tuple;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Depth accounting of one queue, shared by its producers and its consumer.
#[derive(Debug, Default)]
pub(crate) struct Depth {
    current: AtomicUsize,
    max: AtomicUsize,
}

impl Depth {
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

/// The sending side of a task queue.
#[derive(Clone)]
pub(crate) struct QueueTx {
    tx: mpsc::Sender<Vec<Tuple>>,
    depth: Arc<Depth>,
}

/// The receiving side of a task queue.
pub(crate) struct QueueRx {
    rx: mpsc::Receiver<Vec<Tuple>>,
    depth: Arc<Depth>,
}

/// A queue of at most `capacity` tuples moved in batches of at most `batch_size`.
pub(crate) fn queue(capacity: usize, batch_size: usize) -> (QueueTx, QueueRx, Arc<Depth>) {
    let batches = (capacity / batch_size.max(1)).max(1);
    let (tx, rx) = mpsc::channel(batches);
    let depth = Arc::new(Depth::default());
    (
        QueueTx {
            tx,
            depth: depth.clone(),
        },
        QueueRx {
            rx,
            depth: depth.clone(),
        },
        depth,
    )
}

/// The consumer is gone (only after a forced shutdown).
#[derive(Debug)]
pub(crate) struct Closed;

impl QueueTx {
    /// Sends `batch`, waiting for room. Returns how long it waited for room.
    pub(crate) async fn send(&self, batch: Vec<Tuple>) -> Result<Duration, (Closed, Vec<Tuple>)> {
        let mut waited = Duration::ZERO;
        let permit = match self.tx.try_reserve() {
            Ok(p) => p,
            Err(mpsc::error::TrySendError::Closed(())) => return Err((Closed, batch)),
            Err(mpsc::error::TrySendError::Full(())) => {
                let start = Instant::now();
                let p = match self.tx.reserve().await {
                    Ok(p) => p,
                    Err(_) => return Err((Closed, batch)),
                };
                waited = start.elapsed();
                p
            }
        };
        let n = batch.len();
        let now = self.depth.current.fetch_add(n, Ordering::Relaxed) + n;
        self.depth.max.fetch_max(now, Ordering::Relaxed);
        permit.send(batch);
        Ok(waited)
    }
}

impl QueueRx {
    /// The next batch, or `None` once every producer is gone and the queue is drained.
    pub(crate) async fn recv(&mut self) -> Option<Vec<Tuple>> {
        let batch = self.rx.recv().await?;
        self.depth.current.fetch_sub(batch.len(), Ordering::Relaxed);
        Some(batch)
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth.current()
    }
}
