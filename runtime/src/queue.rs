//! Bounded task queues carrying batches of tuples.
//!
//! A task's queue holds at most `queue_capacity` tuples, in batches of at most
//! `batch_size`. See [`queue`] for how the bound and the depth gauge stay exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use squall_topology::Tuple;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// Depth accounting of one queue, shared by its producers and its consumer.
#[derive(Debug, Default)]
pub(crate) struct Depth {
    current: AtomicUsize,
    max: AtomicUsize,
    /// The queue's bound, in tuples.
    capacity: usize,
}

impl Depth {
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

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
    tx: mpsc::UnboundedSender<Vec<Tuple>>,
    room: Arc<Semaphore>,
    depth: Arc<Depth>,
    capacity: usize,
}

/// The receiving side of a task queue.
pub(crate) struct QueueRx {
    rx: mpsc::UnboundedReceiver<Vec<Tuple>>,
    room: Arc<Semaphore>,
    depth: Arc<Depth>,
}

/// A queue of at most `capacity` tuples, moved in batches.
///
/// The bound is a semaphore of `capacity` permits, one per queued tuple: a producer takes
/// permits for a batch before counting it in and sending it; the consumer counts a batch
/// out before it gives the permits back. The depth gauge therefore never exceeds
/// `capacity`, and neither does the queue.
pub(crate) fn queue(capacity: usize) -> (QueueTx, QueueRx, Arc<Depth>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(capacity));
    let depth = Arc::new(Depth {
        capacity: capacity.max(1),
        ..Depth::default()
    });
    (
        QueueTx {
            tx,
            room: room.clone(),
            depth: depth.clone(),
            capacity: capacity.max(1),
        },
        QueueRx {
            rx,
            room,
            depth: depth.clone(),
        },
        depth,
    )
}

/// The consumer is gone (only after a forced shutdown).
#[derive(Debug)]
pub(crate) struct Closed;

impl QueueTx {
    /// Sends `batch` (at most `capacity` tuples), waiting for room. Returns how long it
    /// waited for room.
    pub(crate) async fn send(
        &self,
        mut batch: Vec<Tuple>,
    ) -> Result<Duration, (Closed, Vec<Tuple>)> {
        // A batch larger than the whole queue (one call emitting more tuples than the
        // capacity) could never get its permits at once: it goes in chunks that fit.
        let mut waited = Duration::ZERO;
        while batch.len() > self.capacity {
            let rest = batch.split_off(self.capacity);
            match self.send_fitting(batch).await {
                Ok(w) => waited += w,
                Err((closed, mut failed)) => {
                    failed.extend(rest);
                    return Err((closed, failed));
                }
            }
            batch = rest;
        }
        Ok(waited + self.send_fitting(batch).await?)
    }

    /// Sends a batch of at most `capacity` tuples, waiting for room for all of them.
    async fn send_fitting(&self, batch: Vec<Tuple>) -> Result<Duration, (Closed, Vec<Tuple>)> {
        let n = batch.len() as u32;
        let mut waited = Duration::ZERO;
        match self.room.try_acquire_many(n) {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::Closed) => return Err((Closed, batch)),
            Err(TryAcquireError::NoPermits) => {
                let start = Instant::now();
                match self.room.acquire_many(n).await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return Err((Closed, batch)),
                }
                waited = start.elapsed();
            }
        }
        let now = self.depth.current.fetch_add(n as usize, Ordering::Relaxed) + n as usize;
        self.depth.max.fetch_max(now, Ordering::Relaxed);
        self.tx.send(batch).map_err(|e| (Closed, e.0))?;
        Ok(waited)
    }
}

impl QueueRx {
    /// The next batch, or `None` once every producer is gone and the queue is drained.
    pub(crate) async fn recv(&mut self) -> Option<Vec<Tuple>> {
        let batch = self.rx.recv().await?;
        self.depth.current.fetch_sub(batch.len(), Ordering::Relaxed);
        self.room.add_permits(batch.len());
        Some(batch)
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth.current()
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        // Producers waiting for room must not wait forever for a consumer that is gone.
        self.room.close();
    }
}
