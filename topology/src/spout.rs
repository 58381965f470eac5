//! The [`Spout`](crate::Spout) trait (Storm's `ISpout`): a source of tuples.

use std::sync::Arc;

use crate::collector::{OutputDeclarer, SpoutOutputCollector};
use crate::context::TopologyContext;
use crate::error::{ComponentError, FailReason};
use crate::tuple::MessageId;

/// What a spout says after `next_tuple`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoutStatus {
    /// More may come (whether or not this call emitted anything).
    Active,
    /// Nothing new will come. The spout may still emit replays of failed tuples; the
    /// runtime keeps calling it while it has tuples in flight.
    Exhausted,
}

/// A source of tuples (Storm's `ISpout`).
///
/// All methods run on the spout's own executor, one at a time. They must not block: a
/// spout reading from a blocking source hands the reading to a dedicated thread.
pub trait Spout: Send + 'static {
    /// Declares the output streams.
    fn declare_outputs(&self, declarer: &mut OutputDeclarer);

    /// Called once before the first `next_tuple`.
    fn open(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Emits zero or more tuples. Called only when downstream queues have room and fewer
    /// than `max_spout_pending` tracked tuples are in flight.
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus;

    /// The tuple tree of `id` was fully processed.
    fn ack(&mut self, _id: MessageId) {}

    /// The tuple tree of `id` failed for `reason`; the spout may replay it.
    fn fail(&mut self, _id: MessageId, _reason: &FailReason) {}

    /// Called once when the topology shuts down.
    fn close(&mut self) {}
}

impl<S: Spout + ?Sized> Spout for Box<S> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        (**self).declare_outputs(declarer)
    }
    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        (**self).open(ctx)
    }
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        (**self).next_tuple(out)
    }
    fn ack(&mut self, id: MessageId) {
        (**self).ack(id)
    }
    fn fail(&mut self, id: MessageId, reason: &FailReason) {
        (**self).fail(id, reason)
    }
    fn close(&mut self) {
        (**self).close()
    }
}

/// Makes a new spout instance for each task.
pub type SpoutFactory = Arc<dyn Fn() -> Box<dyn Spout> + Send + Sync>;
